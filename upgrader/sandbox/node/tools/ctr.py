"""``ctr`` on a sandbox node: containerd's CLI, for the images the node has and for running a tool in one.

A kubeadm node usually has no etcdctl or etcdutl of its own: the tools come from the etcd image its
manifest names, run through containerd in the kubelet's namespace ``k8s.io``. Simulated, with real
ctr's words where it fails:

- ``ctr -n k8s.io images ls [-q]`` (``image``/``i``, ``list``): the node's images (see
  :mod:`upgrader.sandbox.node.images`), one reference per line with ``-q``;
- ``ctr -n k8s.io images pull [--platform P] [--all-platforms] IMAGE``: an image the registry has
  (as far as the sandbox knows) is added to the node's images; another fails as not found;
- ``ctr -n k8s.io run [--rm] [--net-host] [--mount type=bind,src=DIR,dst=DIR,options=rbind:rw]...
  IMAGE CONTAINER_ID TOOL [ARGS...]``, exec form only: in an etcd image, etcd/etcdctl/etcdutl at the
  image's version (see :mod:`.etcd_container`); in ``registry.k8s.io/kube-apiserver``,
  ``kube-controller-manager`` and ``kube-scheduler`` images, ``COMPONENT --help`` prints the text of
  :func:`upgrader.sandbox.node.tools.component_help.help_text`. A tool the image does not hold fails
  as runc does (exit 1). Mounts are those of :mod:`.container` (node directories only).

Only the ``k8s.io`` namespace holds images (ctr's default namespace, ``default``, has none, and the
sandbox pulls or runs nothing there). Anything else ctr can do is refused with a line on stderr.
"""

from __future__ import annotations

from upgrader.sandbox import releases
from upgrader.sandbox.node import images
from upgrader.sandbox.node.tools import Node, component_help, etcd_container
from upgrader.sandbox.node.tools.container import Bind, Container, MountError, missing_tool, parse_mount

K8S_NAMESPACE = "k8s.io"
KUBE_HELP = ("kube-apiserver", "kube-controller-manager", "kube-scheduler")
IMAGE_VERBS = ("images", "image", "i")
TOOL_DIRS = {"etcd": ("/usr/local/bin",), "etcdctl": ("/usr/local/bin",), "etcdutl": ("/usr/local/bin",),
             "sh": ("/bin", "/usr/bin"), **{k: ("/usr/local/bin",) for k in KUBE_HELP}}


def main(node: Node, args: list[str]) -> int:
    namespace, rest = _global_flags(args)
    if rest is None:
        node.warn(f"ctr: global options other than -n/--namespace are not simulated on sandbox node {node.name}")
        return 1
    verb = rest[0] if rest else ""
    if verb in IMAGE_VERBS and rest[1:2] in (["ls"], ["list"]):
        return _images_ls(node, namespace, rest[2:])
    if verb in IMAGE_VERBS and rest[1:2] == ["pull"]:
        return _pull(node, namespace, rest[2:])
    if verb == "run":
        return _run(node, namespace, rest[1:])
    node.warn(f"ctr: {' '.join(rest[:2]) or '(no command)'}: not simulated on sandbox node {node.name} "
              "(images ls, images pull and run are)")
    return 1


def _global_flags(args: list[str]) -> tuple[str, list[str] | None]:
    namespace, i = "default", 0
    while i < len(args) and args[i].startswith("-"):
        arg = args[i]
        if arg in ("-n", "--namespace") and i + 1 < len(args):
            namespace, i = args[i + 1], i + 2
        elif arg.startswith(("--namespace=", "-n=")):
            namespace, i = arg.split("=", 1)[1], i + 1
        else:
            return namespace, None
    return namespace, args[i:]


def _images_ls(node: Node, namespace: str, args: list[str]) -> int:
    quiet = any(a in ("-q", "--quiet") for a in args)
    refs = images.present(node.layout) if namespace == K8S_NAMESPACE else []
    if quiet:
        for ref in refs:
            node.say(ref)
        return 0
    node.say("REF\tTYPE\tDIGEST\tSIZE\tPLATFORMS\tLABELS")
    for ref in refs:
        node.say(f"{ref}\tapplication/vnd.oci.image.index.v1+json\t{images.digest(ref)}\t-\tlinux/amd64\t"
                 "io.cri-containerd.image=managed")
    return 0


def _only_k8s(node: Node, namespace: str) -> bool:
    if namespace == K8S_NAMESPACE:
        return True
    node.warn(f"ctr: sandbox node {node.name} simulates only the kubelet's namespace: use ctr -n {K8S_NAMESPACE}")
    return False


def _pull(node: Node, namespace: str, args: list[str]) -> int:
    if not _only_k8s(node, namespace):
        return 1
    refs, i = [], 0
    while i < len(args):
        if args[i] == "--platform":
            i += 2
            continue
        if not args[i].startswith("-"):
            refs.append(args[i])
        i += 1
    if len(refs) != 1:
        node.warn("ctr: please provide an image reference to pull")
        return 1
    ref = refs[0]
    if not images.pullable(ref):
        node.warn(f'ctr: failed to resolve reference "{ref}": {ref}: not found')
        return 1
    node.say(f"{ref}: resolved       |++++++++++++++++++++++++++++++++++++++|")
    node.say(f"unpacking linux/amd64 {images.digest(ref)}...\ndone: 0.1s")
    images.record_pulled(node.layout, [ref])
    return 0


def _run_options(node: Node, args: list[str]) -> tuple[bool, list[Bind], list[str]] | int:
    net_host, binds, i = False, [], 0
    while i < len(args) and args[i].startswith("-"):
        arg = args[i]
        if arg in ("--rm", "-t", "--tty"):
            i += 1
        elif arg == "--net-host":
            net_host, i = True, i + 1
        elif arg == "--mount" or arg.startswith("--mount="):
            spec = arg.split("=", 1)[1] if "=" in arg else (args[i + 1] if i + 1 < len(args) else "")
            i += 1 if "=" in arg else 2
            try:
                binds.append(parse_mount(node, spec))
            except MountError as e:
                node.warn(str(e))
                return 1
        else:
            node.warn(f"ctr: run option {arg} is not simulated on sandbox node {node.name} (--rm, --net-host and "
                      "--mount are)")
            return 1
    return net_host, binds, args[i:]


def _run(node: Node, namespace: str, args: list[str]) -> int:
    parsed = _run_options(node, args)
    if isinstance(parsed, int):
        return parsed
    net_host, binds, rest = parsed
    if len(rest) < 2:
        node.warn("ctr: image ref and container id must be provided")
        return 1
    ref, tool, tool_args = rest[0], (rest[2] if len(rest) > 2 else ""), rest[3:]
    if namespace != K8S_NAMESPACE or ref not in images.present(node.layout):
        node.warn(f'ctr: image "{ref}": not found')
        return 1
    if not tool:
        node.warn(f"ctr: sandbox node {node.name} does not run an image's default command: name the tool "
                  "(exec form: ... IMAGE ID TOOL ARGS)")
        return 1
    comp, (_, tag) = images.component(ref), images.split(ref)
    if comp == "etcd":
        return _etcd(node, Container(node, ref, net_host, binds), tag, tool, tool_args)
    if comp in KUBE_HELP:
        return _kube_help(node, comp, tag, tool, tool_args)
    node.warn(f"ctr: running {ref} is not simulated on sandbox node {node.name} (etcd and kube-apiserver, "
              "kube-controller-manager, kube-scheduler images are)")
    return 1


def _holds(tool: str, tools: tuple[str, ...]) -> str | None:
    """The image's tool an exec-form TOOL names (``etcdutl`` or ``/usr/local/bin/etcdutl``), or None."""
    if "/" not in tool:
        return tool if tool in tools else None
    directory, _, name = tool.rpartition("/")
    return name if name in tools and directory in TOOL_DIRS.get(name, ()) else None


def _etcd(node: Node, c: Container, tag: str, tool: str, args: list[str]) -> int:
    try:
        image = releases.etcd_image(tag)
        name = _holds(tool, image.tools)
        if name is None:
            node.warn(missing_tool(tool))
            return 1
        return etcd_container.run(c, image, name, args)
    finally:
        c.close()


def _kube_help(node: Node, component: str, tag: str, tool: str, args: list[str]) -> int:
    if _holds(tool, (component,)) is None:
        node.warn(missing_tool(tool))
        return 1
    if args not in (["--help"], ["-h"]):
        node.warn(f"{component}: only `{component} --help` is simulated in a container on sandbox node {node.name}")
        return 1
    node.say(component_help.help_text(component, tag))
    return 0
