# ruff: noqa: E501  (the tools' own help texts, kept as they print them)
"""What the etcd tools inside an etcd image print: versions and the help texts capability probes read.

The layouts follow the real tools: etcdctl uses its own template (``NAME:``/``USAGE:``/``OPTIONS:``,
recorded from etcdctl 3.4.23 and, for 3.5 and 3.6, rendered from etcd-io/etcd
etcdctl/ctlv3/command/snapshot_command.go of those branches); etcdutl uses cobra's default
(``Usage:``/``Flags:``, etcdutl/etcdutl/snapshot_command.go). What a probe reads is exact: the usage
line names the command, and ``--bump-revision``/``--mark-compacted`` are listed only by the versions
that have them (etcdctl 3.5.10+, etcdutl). etcd 3.6's etcdctl has only ``snapshot save``: asked for
``snapshot restore`` or ``status`` it prints the help of ``snapshot`` and exits 0.
"""

from __future__ import annotations

import hashlib

from upgrader.sandbox.releases import EtcdImage

GO = {(3, 5): "go1.23.12", (3, 6): "go1.24.11", (3, 7): "go1.25.5"}


def api(image: EtcdImage) -> str:
    return f"{image.version[0]}.{image.version[1]}"


def version(tool: str, image: EtcdImage) -> str:
    if tool == "etcd":
        return (f"etcd Version: {image.semver}\nGit SHA: {hashlib.sha1(image.tag.encode()).hexdigest()[:7]}\n"
                f"Go Version: {GO.get(image.minor, 'go1.22.9')}\nGo OS/Arch: linux/amd64")
    return f"{tool} version: {image.semver}\nAPI version: {api(image)}"


def etcdctl_snapshot(image: EtcdImage) -> str:
    """``etcdctl snapshot`` (and, from 3.6, what ``snapshot restore``/``status`` print instead)."""
    commands = ("\trestore\tRestores an etcd member snapshot to an etcd directory\n"
                "\tsave\tStores an etcd node backend snapshot to a given file\n"
                "\tstatus\tGets backend snapshot status of a given file\n") if image.etcdctl_restores else (
                "\tsave\tStores an etcd node backend snapshot to a given file\n")
    return (f"NAME:\n\tsnapshot - Manages etcd node snapshots\n\nUSAGE:\n\tetcdctl snapshot <subcommand> [flags]\n\n"
            f"API VERSION:\n\t{api(image)}\n\n\nCOMMANDS:\n{commands}\nOPTIONS:\n  -h, --help[=false]\thelp for snapshot\n")


def etcdctl_restore(image: EtcdImage) -> str:
    bump = ("      --bump-revision=0\t\t\t\t\t\tHow much to increase the latest revision after restore\n"
            if image.bump_flags("etcdctl") else "")
    mark = ("      --mark-compacted[=false]\t\t\t\t\tMark the latest revision after restore as the point of scheduled "
            "compaction (required if --bump-revision > 0, disallowed otherwise)\n" if image.bump_flags("etcdctl") else "")
    return ("NAME:\n\tsnapshot restore - Restores an etcd member snapshot to an etcd directory\n\n"
            "USAGE:\n\tetcdctl snapshot restore <filename> [options] [flags]\n\n"
            "OPTIONS:\n"
            f"{bump}"
            "      --data-dir=\"\"\t\t\t\t\t\tPath to the data directory\n"
            "  -h, --help[=false]\t\t\t\t\t\thelp for restore\n"
            "      --initial-advertise-peer-urls=\"http://localhost:2380\"\tList of this member's peer URLs to advertise to the rest of the cluster\n"
            "      --initial-cluster=\"default=http://localhost:2380\"\t\tInitial cluster configuration for restore bootstrap\n"
            "      --initial-cluster-token=\"etcd-cluster\"\t\t\tInitial cluster token for the etcd cluster during restore bootstrap\n"
            f"{mark}"
            "      --name=\"default\"\t\t\t\t\t\tHuman-readable name for this member\n"
            "      --skip-hash-check[=false]\t\t\t\t\tIgnore snapshot integrity hash value (required if copied from data directory)\n"
            "      --wal-dir=\"\"\t\t\t\t\t\tPath to the WAL directory (use --data-dir if none given)\n\n")


def etcdctl_status() -> str:
    return ("NAME:\n\tsnapshot status - Gets backend snapshot status of a given file\n\n"
            "USAGE:\n\tetcdctl snapshot status <filename> [flags]\n\n"
            "DESCRIPTION:\n\tWhen --write-out is set to simple, this command prints out comma-separated status lists for each endpoint.\n"
            "\tThe items in the lists are hash, revision, total keys, total size.\n\n"
            "OPTIONS:\n  -h, --help[=false]\thelp for status\n\n")


GLOBAL = ("\nGlobal Flags:\n  -w, --write-out string   set the output format (fields, json, protobuf, simple, table) "
          "(default \"simple\")\n")


def etcdutl_restore(image: EtcdImage) -> str:
    memory = ("      --initial-memory-map-size uint         Initial memory map size of the database in bytes. It uses "
              "the default value if not defined or defined to 0\n" if image.minor >= (3, 6) else "")
    return ("Restores an etcd member snapshot to an etcd directory\n\n"
            "Usage:\n  etcdutl snapshot restore <filename> --data-dir {output dir} [options] [flags]\n\n"
            "Flags:\n"
            "      --bump-revision uint                   How much to increase the latest revision after restore\n"
            "      --data-dir string                      Path to the output data directory\n"
            "  -h, --help                                 help for restore\n"
            "      --initial-advertise-peer-urls string   List of this member's peer URLs to advertise to the rest of the cluster (default \"http://localhost:2380\")\n"
            "      --initial-cluster string               Initial cluster configuration for restore bootstrap (default \"default=http://localhost:2380\")\n"
            "      --initial-cluster-token string         Initial cluster token for the etcd cluster during restore bootstrap (default \"etcd-cluster\")\n"
            f"{memory}"
            "      --mark-compacted                       Mark the latest revision after restore as the point of scheduled compaction (required if --bump-revision > 0, disallowed otherwise)\n"
            "      --name string                          Human-readable name for this member (default \"default\")\n"
            "      --skip-hash-check                      Ignore snapshot integrity hash value (required if copied from data directory)\n"
            "      --wal-dir string                       Path to the WAL directory (use --data-dir if none given)\n"
            f"{GLOBAL}")


def etcdutl_status() -> str:
    return ("Gets backend snapshot status of a given file\n\n"
            "Usage:\n  etcdutl snapshot status <filename> [flags]\n\n"
            "Flags:\n  -h, --help   help for status\n"
            f"{GLOBAL}")


def etcdutl_snapshot() -> str:
    return ("Manages etcd node snapshots\n\n"
            "Usage:\n  etcdutl snapshot [command]\n\n"
            "Available Commands:\n"
            "  restore     Restores an etcd member snapshot to an etcd directory\n"
            "  status      Gets backend snapshot status of a given file\n\n"
            "Flags:\n  -h, --help   help for snapshot\n"
            f"{GLOBAL}\nUse \"etcdutl snapshot [command] --help\" for more information about a command.\n")
