"""images (image, img), pull, rmi, inspecti, imagefsinfo."""

from __future__ import annotations

from typing import Any

from crictl import cli, log, ops
from crictl.cmdutil import (
    app,
    inspect_targets,
    is_set,
    parse_labels,
    show_help,
    split_slice,
    template_option,
)
from crictl.commands.jsonschema import PULL_JSONSCHEMA
from crictl.configfiles import load_pod_config
from crictl.errors import CliError
from crictl.humanize import human_size, truncate_id
from crictl.output import (
    OUTPUT_JSON,
    OUTPUT_TABLE,
    OUTPUT_YAML,
    Table,
    go_map_string,
    print_message,
    print_status_entries,
    status_entry,
)

RMI_DESCRIPTION = """Remove one or more images by ID or reference.

NOTE: Due to CRI API limitations, when you specify an image by tag (e.g., 'localhost/test:latest'),
the entire image will be removed along with ALL of its tags, not just the specified tag.
This behavior differs from 'docker rmi', 'nerdctl rmi', and 'ctr image rm', which only remove
the specified tag. To remove only a specific tag, use the container runtime's native CLI tool
(e.g., 'nerdctl', 'ctr', or 'podman')."""

FILTER_HELP = (
    "Filter output based on provided conditions.\nAvailable filters: \n* dangling=(boolean - true or false)\n"
    "* reference=/regular expression/\n* before=<image-name>[:<tag>]|<image id>|<image@digest>\n"
    "* since=<image-name>[:<tag>]|<image id>|<image@digest>\nMultiple filters can be combined together."
)


def pull_options(func: Any) -> Any:
    """The credential and timeout flags shared by pull, run and create."""
    func = cli.option(
        "--pull-timeout", "--pt", "pull_timeout", type="duration", default="0s", envvar="CRICTL_PULL_TIMEOUT",
        help="Maximum time to be used for pulling the image, disabled if set to 0s",
    )(func)  # fmt: skip
    func = cli.option(
        "-u", "--username", default="",
        help="Use `USERNAME` for accessing the registry. The password will be requested on the command line",
    )(func)  # fmt: skip
    func = cli.option(
        "--auth", default="", envvar="CRICTL_AUTH",
        help="Use `AUTH_STRING` for accessing the registry. AUTH_STRING is a base64 encoded 'USERNAME[:PASSWORD]'",
    )(func)  # fmt: skip
    func = cli.option(
        "--creds", default="", envvar="CRICTL_CREDS", help="Use `USERNAME[:PASSWORD]` for accessing the registry"
    )(func)
    return func


def parse_creds(creds: str) -> tuple[str, str]:
    if not creds:
        raise CliError("credentials can't be empty")
    parts = creds.split(":", 1)
    if len(parts) == 1:
        return parts[0], ""
    if not parts[0]:
        raise CliError("username can't be empty")
    return parts[0], parts[1]


def get_auth(creds: str, auth: str, username: str) -> Any:
    """crictl's getAuth: -u prompts for a password; --creds and --auth are exclusive."""
    if username:
        import getpass

        password = getpass.getpass("Enter Password:")
        return ops.pb().AuthConfig(username=username, password=password)
    if creds and auth:
        raise CliError("both `--creds` and `--auth` are specified")
    if creds:
        user, password = parse_creds(creds)
        return ops.pb().AuthConfig(username=user, password=password)
    if auth:
        return ops.pb().AuthConfig(auth=auth)
    return None


def pull_with_progress(
    ctx_app: Any, image: str, auth: Any, sandbox: Any, annotations: dict[str, str] | None, timeout: float
) -> Any:
    from crictl.pullprogress import PullProgress

    with PullProgress(image):
        return ops.pull_image(ctx_app, image, auth, sandbox, annotations, timeout)


@cli.command("pull", help="Pull an image from a registry", short_options=True, subcommands=[PULL_JSONSCHEMA])
@cli.option("--pod-config", default=None, takes_file=True, help="Use `pod-config.[json|yaml]` to override the pull c")
@cli.option("-a", "--annotation", multiple=True, help="Annotation to be set on the pulled image")
@pull_options
@cli.argument("args", nargs=-1)
@cli.pass_context
def pull_command(
    ctx: cli.Context, pod_config: str | None, annotation: tuple[str, ...], creds: str, auth: str,
    username: str, pull_timeout: float, args: tuple[str, ...],
) -> None:  # fmt: skip
    """NAME[:TAG|@DIGEST]"""
    if not args or not args[0]:
        raise CliError("image name cannot be empty")
    if len(args) > 1:
        show_help()
    image = args[0]
    a = app(ctx)
    auth_config = get_auth(creds, auth, username)
    sandbox = None
    if pod_config:
        sandbox = load_pod_config(pod_config)
    annotations = parse_labels(annotation) if annotation else None
    try:
        response = pull_with_progress(a, image, auth_config, sandbox, annotations, pull_timeout)
    except CliError as exc:
        raise CliError(f"pulling image: {exc.message}") from exc
    print(f"Image is up to date for {response.image_ref}")


@cli.command("images", help="List images", aliases=["image", "img"], short_options=True)
@cli.option("-v", "--verbose", is_flag=True, help="Show verbose info for images")
@cli.option("-q", "--quiet", is_flag=True, help="Only show image IDs")
@cli.option("-f", "--filter", "filters", multiple=True, help=FILTER_HELP)
@cli.option("-o", "--output", default="", help="Output format, One of: json|yaml|table")
@cli.option("--digests", is_flag=True, help="Show digests")
@cli.option("--no-trunc", is_flag=True, help="Show output without truncating the ID")
@cli.option("--pinned", is_flag=True, help="Show whether the image is pinned or not")
@cli.argument("args", nargs=-1)
@cli.pass_context
def images_command(
    ctx: cli.Context, verbose: bool, quiet: bool, filters: tuple[str, ...], output: str, digests: bool,
    no_trunc: bool, pinned: bool, args: tuple[str, ...],
) -> None:  # fmt: skip
    """[REPOSITORY[:TAG]]"""
    if len(args) > 1:
        show_help()
    try:
        images = ops.list_images(app(ctx), args[0] if args else "", split_slice(filters))
    except CliError as exc:
        raise CliError(f"listing images: {exc.message}") from exc
    if output in (OUTPUT_JSON, OUTPUT_YAML):
        print_message(ops.pb().ListImagesResponse(images=images), output)
        return
    table = Table()
    if not verbose and not quiet:
        header = ["IMAGE", "TAG"]
        if digests:
            header.append("DIGEST")
        header += ["IMAGE ID", "SIZE"]
        if pinned:
            header.append("PINNED")
        table.add_row(header)
    for image in images:
        if quiet:
            print(image.id)
            continue
        if not verbose:
            name, repo_digest = ops.normalize_repo_digest(image.repo_digests)
            size = human_size(float(image.size), 3)
            image_id = image.id
            if not no_trunc:
                image_id = truncate_id(image_id, "sha256:")
                repo_digest = truncate_id(repo_digest, "sha256:")
            for repo, tag in ops.normalize_repo_tag_pairs(image.repo_tags, name):
                row = [repo, tag]
                if digests:
                    row.append(repo_digest)
                row += [image_id, size]
                if pinned:
                    row.append("true" if image.pinned else "false")
                table.add_row(row)
            continue
        print(f"ID: {image.id}")
        for tag in image.repo_tags:
            print(f"RepoTags: {tag}")
        for digest in image.repo_digests:
            print(f"RepoDigests: {digest}")
        if image.size:
            print(f"Size: {image.size}")
        if image.HasField("uid"):
            print(f"Uid: value:{image.uid.value}")
        if image.username:
            print(f"Username: {image.username}")
        if image.pinned:
            print("Pinned: true")
        print()
    table.flush()


@cli.command("inspecti", help="Return the status of one or more images", short_options=True)
@cli.option("-o", "--output", default="", help="Output format, One of: json|yaml|go-template|table")
@cli.option("-q", "--quiet", is_flag=True, help="Do not show verbose information")
@template_option()
@cli.option("--name", default="", help="Filter by image name")
@cli.option("-f", "--filter", "filters", multiple=True, help=FILTER_HELP)
@cli.argument("ids", nargs=-1)
@cli.pass_context
def inspecti_command(
    ctx: cli.Context, output: str, quiet: bool, template: str, name: str, filters: tuple[str, ...],
    ids: tuple[str, ...],
) -> None:  # fmt: skip
    """IMAGE-ID [IMAGE-ID...]"""
    from crictl.protojson import message_to_dict

    a = app(ctx)
    verbose = not quiet
    output = output or OUTPUT_JSON
    targets = inspect_targets(ids, lambda: [img.id for img in ops.list_images(a, name, split_slice(filters))], "images")
    entries = []
    for target in targets:
        try:
            response = ops.image_status(a, target, verbose)
        except CliError as exc:
            raise CliError(f'image status for "{target}" request: {exc.message}') from exc
        if not response.HasField("image"):
            raise CliError(f'no such image "{target}" present')
        if output == OUTPUT_TABLE:
            _image_status_table(response, verbose)
        else:
            entries.append(status_entry(message_to_dict(response.image), dict(response.info)))
    print_status_entries(entries, output, template)


def _image_status_table(response: Any, verbose: bool) -> None:
    image = response.image
    print(f"ID: {image.id}")
    for tag in image.repo_tags:
        print(f"Tag: {tag}")
    for digest in image.repo_digests:
        print(f"Digest: {digest}")
    print(f"Size: {human_size(float(image.size), 3)}")
    if verbose:
        print(f"Info: {go_map_string(dict(response.info))}")


@cli.command("rmi", help="Remove one or more images", short_options=True, description=RMI_DESCRIPTION)
@cli.option("-a", "--all", "all_", is_flag=True, help="Remove all images")
@cli.option("-q", "--prune", is_flag=True, help="Remove all unused images")
@cli.argument("ids", nargs=-1)
@cli.pass_context
def rmi_command(ctx: cli.Context, all_: bool, prune: bool, ids: tuple[str, ...]) -> None:
    """IMAGE-ID [IMAGE-ID...]"""
    a = app(ctx)
    targets: dict[str, bool] = {}
    for image_id in ids:
        log.debug(f"User specified image to be removed: {image_id}")
        targets[image_id] = True
    if all_ or prune:
        for img in ops.list_images(a, "", []):
            if prune and img.pinned:
                log.debug(f"Excluding pinned container image: {img.id}")
                continue
            targets[img.id] = True
    if prune:
        containers = ops.list_containers(a, ops.ListOptions(all=True), with_image_client=False)
        for ctr in containers:
            try:
                status = ops.image_status(a, ctr.image.image, False)
            except CliError as exc:
                log.error(f'image status request for "{ctr.image.image}" failed: {exc.message}')
                continue
            log.debug(f"Excluding in use container image: {status.image.id}")
            targets[status.image.id] = False
    if not targets:
        if all_ or prune:
            log.info("No images to remove")
            return
        show_help()
    errors: list[str] = []
    for image_id, remove in targets.items():
        if not remove:
            continue
        try:
            _remove_one(a, image_id, prune)
        except CliError as exc:
            errors.append(exc.message)
    if errors:
        raise CliError("\n".join(errors))


def _remove_one(a: Any, image_id: str, prune: bool) -> None:
    try:
        status = ops.image_status(a, image_id, False)
    except CliError as exc:
        raise CliError(f'image status request for "{image_id}" failed: {exc.message}') from exc
    if not status.HasField("image"):
        raise CliError(f"no such image {image_id}")
    tags = list(status.image.repo_tags)
    likely_tag = not image_id.startswith("sha256:") and (":" in image_id or "/" in image_id)
    if len(tags) > 1 and likely_tag:
        log.warning(f'Image "{image_id}" has multiple tags. Removing this image will delete all of the following tags:')
        for tag in tags:
            log.warning(f"  {tag}")
    try:
        ops.remove_image(a, image_id)
    except CliError as exc:
        if not prune:
            raise CliError(f'error of removing image "{image_id}": {exc.message}') from exc
        return
    for ref in tags or list(status.image.repo_digests):
        print(f"Deleted: {ref}")


@cli.command("imagefsinfo", help="Return image filesystem info", short_options=True)
@cli.option("-o", "--output", default="", help="Output format, One of: json|yaml|go-template|table")
@template_option()
@cli.pass_context
def imagefsinfo_command(ctx: cli.Context, output: str, template: str) -> None:
    from crictl.protojson import message_to_dict

    output = output or OUTPUT_JSON
    try:
        response = ops.image_fs_info(app(ctx))
    except CliError as exc:
        raise CliError(f"image filesystem info request: {exc.message}") from exc
    if output == OUTPUT_TABLE:
        _fs_table("Container", response.container_filesystems)
        _fs_table("Image", response.image_filesystems)
        return
    print_status_entries([status_entry(message_to_dict(response))], output, template)


def _fs_table(label: str, filesystems: Any) -> None:
    print(f"{label} Filesystem ")
    for i, fs in enumerate(filesystems):
        print(f"TimeStamp[{i}]: {fs.timestamp}")
        print(f"Disk[{i}]: {human_size(float(fs.used_bytes.value))}")
        print(f"Inodes[{i}]: {fs.inodes_used.value}")
        print(f"Mountpoint[{i}]: {fs.fs_id.mountpoint}")


COMMANDS = [pull_command, images_command, inspecti_command, rmi_command, imagefsinfo_command]
_ = is_set
