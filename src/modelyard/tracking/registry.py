"""Registry operations: list and describe models, move aliases with an audit entry, resolve `models:/` URIs.

Every failure reads as one message: an unknown name, version or alias raises ModelNotFoundError naming what
exists; a broken store raises TrackingStoreError. Alias moves hold the store's write lock, and an alias whose
audit entry cannot be written is put back, so the registry and its trail never disagree.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from modelyard.bundle import MANIFEST, identity, read_manifest
from modelyard.errors import BundleError, ModelNotFoundError, UserError
from modelyard.fsutil import replace_dir
from modelyard.home import cache_dir
from modelyard.state import masked
from modelyard.tracking import audit, store

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion

LATEST = "latest"
ONE_TASK_HINT = "a model name holds one task: train the other model under another `name:` in its config"
URI_RE = re.compile(r"^models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/@]+)|/(?P<version>[^/@]+))/?$")


@dataclass
class VersionInfo:
    version: str
    aliases: list[str]
    created: datetime
    metrics: dict[str, float]
    main_metric: str | None
    bundle_path: str | None
    run_id: str | None
    bundle_id: str | None = None  # the registered bundle's `bundle.identity`; None for versions registered before


@dataclass
class ModelInfo:
    name: str
    versions: list[VersionInfo]
    aliases: dict[str, str]
    updated: datetime
    trail: list[audit.AliasMove] = field(default_factory=list)

    def headline(self) -> VersionInfo | None:
        """The version to quote in a summary: the champion if there is one, else the newest."""
        by_number = {v.version: v for v in self.versions}
        if "champion" in self.aliases and self.aliases["champion"] in by_number:
            return by_number[self.aliases["champion"]]
        return self.versions[0] if self.versions else None


def is_model_uri(value: object) -> bool:
    return isinstance(value, str) and value.startswith("models:/")


def parse_model_uri(uri: str) -> tuple[str, str | None, str | None]:
    """`models:/NAME@ALIAS` -> (name, alias, None); `models:/NAME/VERSION` -> (name, None, version), the version
    a number or `latest` (the newest)."""
    match = URI_RE.match(uri.strip())
    if not match:
        raise UserError(
            f"'{uri}' is not a registry model URI",
            "write models:/NAME@ALIAS (e.g. models:/banking-intents@champion), models:/NAME/VERSION or "
            "models:/NAME/latest",
        )
    return match["name"], match["alias"], match["version"]


def _ms(value: int | None) -> datetime:
    return datetime.fromtimestamp((value or 0) / 1000, tz=UTC)


def _version_info(v: ModelVersion) -> VersionInfo:
    tags = dict(v.tags or {})
    metrics = {}
    for key, value in tags.items():
        if key.startswith("test."):
            try:
                metrics[key.removeprefix("test.")] = float(value)
            except ValueError:
                continue
    return VersionInfo(
        version=str(v.version),
        aliases=[],
        created=_ms(v.creation_timestamp),
        metrics=metrics,
        main_metric=tags.get("main_metric"),
        bundle_path=tags.get("bundle_path"),
        run_id=v.run_id,
        bundle_id=tags.get("bundle_id"),
    )


def _names(client: MlflowClient) -> list[str]:
    return sorted(m.name for m in client.search_registered_models(max_results=1000))


def _registered(client: MlflowClient, name: str) -> Any:
    from mlflow.exceptions import MlflowException

    try:
        return client.get_registered_model(name)
    except MlflowException as err:
        if err.error_code != "RESOURCE_DOES_NOT_EXIST":
            raise
    known = _names(client)
    raise ModelNotFoundError(
        f"no registered model '{name}' in {masked(store.tracking_uri())}; "
        + (f"registered models: {', '.join(known)}" if known else "the registry is empty"),
        "train one with `modelyard train CONFIG` (it registers the model under the config's name), "
        "or see `modelyard models list`",
    )


def _versions(client: MlflowClient, name: str) -> list[ModelVersion]:
    found = client.search_model_versions(f"name = '{name}'", max_results=10000)
    return sorted(found, key=lambda v: int(v.version), reverse=True)


def describe(name: str, client: MlflowClient | None = None) -> ModelInfo:
    """One model with all its versions, aliases and audit trail (newest version first)."""
    with store.store_errors():
        client = client or store.client()
        model = _registered(client, name)
        versions = [_version_info(v) for v in _versions(client, name)]
    aliases = {k: str(v) for k, v in (model.aliases or {}).items()}
    for v in versions:  # version search results do not carry aliases; the registered model does
        v.aliases = sorted(a for a, number in aliases.items() if number == v.version)
    return ModelInfo(
        name=model.name,
        versions=versions,
        aliases=aliases,
        updated=_ms(model.last_updated_timestamp),
        trail=audit.read_trail(dict(model.tags or {})),
    )


def list_models() -> list[ModelInfo]:
    with store.store_errors():
        client = store.client()
        return [describe(name, client) for name in _names(client)]


def get_version(name: str, alias: str | None = None, version: str | None = None) -> ModelVersion:
    """The version an alias or number names; ModelNotFoundError lists what exists otherwise."""
    with store.store_errors():
        client = store.client()
        model = _registered(client, name)
        aliases = {k: str(v) for k, v in (model.aliases or {}).items()}
        if alias is not None:
            if alias not in aliases:
                have = ", ".join(f"{a} -> v{v}" for a, v in sorted(aliases.items())) or "none yet"
                raise ModelNotFoundError(
                    f"model '{name}' has no alias '{alias}'; its aliases: {have}",
                    f"set it with `modelyard models promote {name} VERSION --alias {alias}`",
                )
            version = aliases[alias]
        numbers = [str(v.version) for v in _versions(client, name)]
        if version == LATEST and numbers:  # as MLflow reads models:/NAME/latest: the newest version
            version = numbers[0]
        if str(version) not in numbers:
            raise ModelNotFoundError(
                f"model '{name}' has no version '{version}'; its versions: " + (", ".join(reversed(numbers)) or "none"),
                f"see `modelyard models show {name}`",
            )
        return client.get_model_version(name, str(version))


def promote(name: str, version: str, alias: str, reason: str | None = None) -> audit.AliasMove | None:
    """Point `alias` at `version` and record the move; None when it already points there."""
    check_alias(alias)
    target = get_version(name, version=str(version))
    _check_same_task(name, target)
    return _move(name, alias, str(target.version), "promote", reason)


def version_task(version: ModelVersion) -> str | None:
    """The task a registered version was trained for (None for versions registered before it was tagged)."""
    return (version.tags or {}).get("task")


def _check_same_task(name: str, target: ModelVersion) -> None:
    """A UserError when `target` is of another task than a version an alias of `name` points at: a server of
    that name would be handed a model that cannot read its traffic."""
    with store.store_errors():
        refuse_other_task(
            store.client(), name, version_task(target), f"version {target.version}", "nothing was moved", target.version
        )


def refuse_other_task(
    client: MlflowClient, name: str, task: str | None, what: str, outcome: str, version: str | None = None
) -> None:
    """A UserError when an alias of registered model `name` points at a version (other than `version`) of another
    task than `task`; `what` names the newcomer and `outcome` says what was not done. Nothing for a new name."""
    from mlflow.exceptions import MlflowException

    try:
        aliases = {k: str(v) for k, v in (client.get_registered_model(name).aliases or {}).items()}
    except MlflowException as err:
        if err.error_code == "RESOURCE_DOES_NOT_EXIST":
            return
        raise
    for alias, number in sorted(aliases.items()):
        held = version_task(client.get_model_version(name, number))
        if task and held and held != task and number != str(version):
            raise UserError(
                f"{what} of model '{name}' is a {task} model, but alias '{alias}' points at version {number}, a "
                f"{held} model; {outcome}",
                ONE_TASK_HINT,
            )


def refuse_to_register(client: MlflowClient, name: str, task: str | None) -> None:
    """A UserError when a bundle of `task` would join versions of another task under `name`, aliased or not: a
    later promotion of either would hand a server of that name a model that cannot read its traffic."""
    outcome = "it was not registered"
    refuse_other_task(client, name, task, "this bundle", outcome)  # an alias names what is served: said first
    for held in _versions(client, name):  # newest first: the one a user most likely meant to follow
        other = version_task(held)
        if task and other and other != task:
            raise UserError(
                f"this bundle of model '{name}' is a {task} model, but version {held.version} of that name is a "
                f"{other} model; {outcome}",
                ONE_TASK_HINT,
            )


def rollback(name: str, alias: str = "champion", reason: str | None = None) -> audit.AliasMove:
    """Move `alias` back to the version that held it before its last promotion."""
    check_alias(alias)
    with store.store_errors(), store.write_lock():  # the trail read and the move are one step
        client = store.client()
        model = _registered(client, name)
        previous = audit.previous_holder(audit.read_trail(dict(model.tags or {}), alias))
        if previous is None:
            raise UserError(
                f"cannot roll back '{alias}' of model '{name}': no earlier version is in the audit trail",
                f"move it explicitly with `modelyard models promote {name} VERSION --alias {alias}`",
            )
        get_version(name, version=previous)
        move = _move(name, alias, previous, "rollback", reason)
    if move is None:
        raise UserError(f"'{alias}' of model '{name}' already points at version {previous}")
    return move


def check_alias(alias: str) -> None:
    """A UserError for a name MLflow would refuse as an alias (or reserves: `latest`, v<number>)."""
    reserved = re.fullmatch(r"[vV]\d+", alias) or alias.lower() == LATEST
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_-]{0,254}", alias) or reserved:
        raise UserError(
            f"'{alias}' is not a valid alias",
            "use letters, digits, '_' and '-', starting with a letter, not 'latest' nor of the form v<number> "
            "(e.g. champion, challenger)",
        )


def _move(name: str, alias: str, version: str, action: str, reason: str | None) -> audit.AliasMove | None:
    """Set the alias and write its audit entry under the write lock; undo the alias if that fails."""
    uri = store.tracking_uri()
    with store.store_errors(uri), store.write_lock(uri):
        client = store.client(uri)
        current = {k: str(v) for k, v in (client.get_registered_model(name).aliases or {}).items()}.get(alias)
        if current == version:
            return None
        move = audit.new_move(alias, action, current, version, reason)  # type: ignore[arg-type]
        client.set_registered_model_alias(name, alias, version)
        try:
            client.set_registered_model_tag(name, move.key(), move.value())
        except BaseException:
            if current is None:
                client.delete_registered_model_alias(name, alias)
            else:
                client.set_registered_model_alias(name, alias, current)
            raise
    return move


class ResolvedModel(NamedTuple):
    """A registry URI resolved: the bundle folder on this machine and the version it is."""

    path: Path
    version: str


def resolve_model_uri(uri: str) -> ResolvedModel:
    """`models:/NAME@ALIAS`, `models:/NAME/VERSION` or `models:/NAME/latest` -> (bundle folder on this machine,
    version number).

    The version's `bundle_path` tag is used when that folder here still holds the bundle registered (a version is
    immutable: a later `train` into the same folder does not change what it serves); otherwise (a shared server,
    another machine, a replaced folder) the bundle logged with the version is downloaded once into MODELYARD_HOME's
    cache.
    """
    name, alias, number = parse_model_uri(uri)
    version = get_version(name, alias=alias, version=number)
    local = (version.tags or {}).get("bundle_path")
    if local and (Path(local) / MANIFEST).is_file():
        if holds_version(Path(local), _version_info(version)):
            return ResolvedModel(Path(local), str(version.version))
        return ResolvedModel(_download_bundle(name, version, replaced=True), str(version.version))
    return ResolvedModel(_download_bundle(name, version), str(version.version))


def holds_version(path: Path, version: VersionInfo) -> bool:
    """Whether the bundle in `path` is the one registered as `version` (trusted for versions registered before
    bundle ids were recorded)."""
    if version.bundle_id is None:
        return True
    try:
        return identity(read_manifest(path)) == version.bundle_id
    except BundleError:
        return False


def versions_held(name: str, path: Path) -> list[str]:
    """The versions of model `name` whose registered bundle is the one now in the folder `path`."""
    try:
        versions = describe(name).versions
    except UserError:  # no such model yet, or a store that tracking itself reports on
        return []
    here = path.resolve()
    there = [v for v in versions if v.bundle_path and Path(v.bundle_path).resolve() == here]
    return sorted((v.version for v in there if holds_version(here, v)), key=int)


def _download_bundle(name: str, version: ModelVersion, replaced: bool = False) -> Path:
    """Fetch the bundle logged inside the version's pyfunc model once; the cache is keyed by its location.
    `replaced`: its `bundle_path` now holds another bundle, which the error names when the store has no copy."""
    from mlflow.exceptions import MlflowException

    uri = store.tracking_uri()
    with store.store_errors(uri):
        client = store.client(uri)
        location = client.get_model_version_download_uri(name, str(version.version)).rstrip("/")
        target = cache_dir("registry") / hashlib.sha256(location.encode()).hexdigest()[:20]
        if (target / MANIFEST).is_file():
            return target
        staging = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.partial")
        staging.mkdir(parents=True)
        try:
            with store.fluent(uri) as ml:
                local = Path(ml.artifacts.download_artifacts(location, dst_path=str(staging)))
                logged = ml.models.Model.load(str(local)).flavors.get("python_function", {})
            path = local / logged.get("artifacts", {}).get("bundle", {}).get("path", "artifacts/bundle")
            if (path / MANIFEST).is_file():
                replace_dir(path, target)
        except (MlflowException, OSError) as err:  # a version logged without a bundle: reported below
            if getattr(err, "error_code", "RESOURCE_DOES_NOT_EXIST") != "RESOURCE_DOES_NOT_EXIST":
                raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    if not (target / MANIFEST).is_file() and replaced:
        raise ModelNotFoundError(
            f"version {version.version} of model '{name}': its bundle folder {version.tags['bundle_path']} now holds "
            "another bundle (trained again into the same folder), and the store keeps no copy of the registered one",
            "train into a new folder (omit --output) so that each version keeps its own bundle",
        )
    if not (target / MANIFEST).is_file():
        raise ModelNotFoundError(
            f"version {version.version} of model '{name}' has no bundle on this machine "
            f"({(version.tags or {}).get('bundle_path', 'no bundle_path tag')}) nor in the store",
            "register it from a bundle with `modelyard models log BUNDLE`",
        )
    return target
