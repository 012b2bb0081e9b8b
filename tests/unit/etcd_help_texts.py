# ruff: noqa: E501  (recorded output, kept as the tool printed it)
"""Help texts of the etcd tools, for the pure parsing tests.

ETCDCTL_34_*: recorded from /usr/bin/etcdctl 3.4.23 (Debian bookworm) on the test machine, GLOBAL OPTIONS cut.
ETCDCTL_36_SNAPSHOT_STATUS: NOT recorded from a binary (no etcd 3.6 here). It is what etcd 3.6 prints for
`etcdctl snapshot status --help` (and exits 0): cobra finds no `status` under `snapshot` and prints the help
of `snapshot` itself, rendered from the v3.6.14 sources (pkg/cobrautl/help.go, etcdctl/ctlv3/command/
snapshot_command.go: `snapshot` has the one subcommand `save`); the layout is the recorded 3.4 parent help.
ETCDUTL_36_RESTORE: likewise rendered from v3.6.14 etcdutl/etcdutl/snapshot_command.go with cobra's
default template (etcdutl sets SetHelpTemplate("{{.UsageString}}")).
"""

ETCDCTL_34_STATUS = """\
NAME:
\tsnapshot status - Gets backend snapshot status of a given file

USAGE:
\tetcdctl snapshot status <filename> [flags]

DESCRIPTION:
\tWhen --write-out is set to simple, this command prints out comma-separated status lists for each endpoint.
\tThe items in the lists are hash, revision, total keys, total size.

OPTIONS:
  -h, --help[=false]\thelp for status

"""

ETCDCTL_34_RESTORE = """\
NAME:
\tsnapshot restore - Restores an etcd member snapshot to an etcd directory

USAGE:
\tetcdctl snapshot restore <filename> [options] [flags]

OPTIONS:
      --data-dir=""\t\t\t\t\t\tPath to the data directory
  -h, --help[=false]\t\t\t\t\t\thelp for restore
      --initial-advertise-peer-urls="http://localhost:2380"\tList of this member's peer URLs to advertise to the rest of the cluster
      --initial-cluster="default=http://localhost:2380"\t\tInitial cluster configuration for restore bootstrap
      --initial-cluster-token="etcd-cluster"\t\t\tInitial cluster token for the etcd cluster during restore bootstrap
      --name="default"\t\t\t\t\t\tHuman-readable name for this member
      --skip-hash-check[=false]\t\t\t\t\tIgnore snapshot integrity hash value (required if copied from data directory)
      --wal-dir=""\t\t\t\t\t\tPath to the WAL directory (use --data-dir if none given)

"""

ETCDCTL_34_SNAPSHOT = """\
NAME:
\tsnapshot - Manages etcd node snapshots

USAGE:
\tetcdctl snapshot <subcommand> [flags]

API VERSION:
\t3.4


COMMANDS:
\trestore\tRestores an etcd member snapshot to an etcd directory
\tsave\tStores an etcd node backend snapshot to a given file
\tstatus\tGets backend snapshot status of a given file

OPTIONS:
  -h, --help[=false]\thelp for snapshot

"""

ETCDCTL_36_SNAPSHOT_STATUS = """\
NAME:
\tsnapshot - Manages etcd node snapshots

USAGE:
\tetcdctl snapshot <subcommand> [flags]

API VERSION:
\t3.6


Examples:
# Save snapshot to a given file
etcdctl snapshot save /backup/etcd-snapshot.db

COMMANDS:
\tsave\tStores an etcd node backend snapshot to a given file

OPTIONS:
  -h, --help[=false]\thelp for snapshot
"""

ETCDUTL_36_RESTORE = """\
Restores an etcd member snapshot to an etcd directory

Usage:
  etcdutl snapshot restore <filename> --data-dir {output dir} [options] [flags]

Flags:
      --bump-revision uint                   How much to increase the latest revision after restore
      --data-dir string                      Path to the output data directory
  -h, --help                                 help for restore
      --initial-advertise-peer-urls string   List of this member's peer URLs to advertise to the rest of the cluster \
(default "http://localhost:2380")
      --initial-cluster string               Initial cluster configuration for restore bootstrap \
(default "default=http://localhost:2380")
      --initial-cluster-token string         Initial cluster token for the etcd cluster during restore bootstrap \
(default "etcd-cluster")
      --initial-memory-map-size uint         Initial memory map size of the database in bytes. It uses the default \
value if not defined or defined to 0
      --mark-compacted                       Mark the latest revision after restore as the point of scheduled \
compaction (required if --bump-revision > 0, disallowed otherwise)
      --name string                          Human-readable name for this member (default "default")
      --skip-hash-check                      Ignore snapshot integrity hash value (required if copied from data \
directory)
      --wal-dir string                       Path to the WAL directory (use --data-dir if none given)

Global Flags:
  -w, --write-out string   set the output format (fields, json, protobuf, simple, table) (default "simple")
"""
