"""Compile contracts/*.sol with solc-js (npm) through standard JSON; cache by source hash.

Nothing here downloads a compiler: solc-js 0.8.24 comes from ``contracts/node_modules`` and
is run by ``tools/solc-shim.js``, which speaks solc's ``--standard-json`` interface.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from chain.errors import CompileError

SOLC_VERSION = "0.8.24"
OZ_PREFIX = "@openzeppelin/contracts/"
OZ_REMAP_TARGET = "contracts/node_modules/@openzeppelin/contracts/"
OUTPUT_SELECTION = [
    "abi",
    "evm.bytecode.object",
    "evm.deployedBytecode.object",
    "evm.methodIdentifiers",
    "storageLayout",
    "metadata",
]
SETTINGS: dict[str, Any] = {
    "optimizer": {"enabled": True, "runs": 200},
    "evmVersion": "cancun",
    "remappings": [f"{OZ_PREFIX}={OZ_REMAP_TARGET}"],
    "outputSelection": {"*": {"*": OUTPUT_SELECTION}},
}
CACHE_PREFIX = "openpay-artifacts-"


def project_root() -> Path:
    """The repository root (the folder holding ``contracts/`` and ``tools/``)."""
    return Path(__file__).resolve().parents[1]


def source_files(root: Path) -> list[Path]:
    """Our Solidity sources: ``contracts/*.sol``, sorted."""
    return sorted((root / "contracts").glob("*.sol"))


def _package_version(root: Path, package: str) -> str:
    manifest = root / "contracts" / "node_modules" / package / "package.json"
    try:
        return str(json.loads(manifest.read_text())["version"])
    except (OSError, ValueError, KeyError) as exc:
        raise CompileError(
            f"{package} is not installed under contracts/node_modules; run `npm ci` in contracts/"
        ) from exc


def source_hash(root: Path) -> str:
    """Hash of every input that changes the output: our sources, settings, solc and OZ versions."""
    digest = hashlib.sha256()
    digest.update(json.dumps(SETTINGS, sort_keys=True).encode())
    digest.update(_package_version(root, "solc").encode())
    digest.update(_package_version(root, "@openzeppelin/contracts").encode())
    for path in source_files(root):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def standard_json_input(root: Path) -> dict[str, Any]:
    """The solc standard-JSON input for all our sources (imports resolved by the shim)."""
    sources = {
        f"contracts/{path.name}": {"content": path.read_text()} for path in source_files(root)
    }
    if not sources:
        raise CompileError(f"no Solidity sources in {root / 'contracts'}")
    return {"language": "Solidity", "sources": sources, "settings": SETTINGS}


def solc_command(root: Path) -> list[str]:
    """How to run solc-js: ``node tools/solc-shim.js`` (``node`` must be on PATH)."""
    node = shutil.which("node")
    if node is None:
        raise CompileError("`node` is not on PATH; it runs solc-js (install nodejs)")
    return [node, str(root / "tools" / "solc-shim.js")]


def run_solc(root: Path, std_input: dict[str, Any], timeout: float = 300.0) -> dict[str, Any]:
    """Runs solc-js on a standard-JSON input and returns its output; raises on errors."""
    env = dict(os.environ, SOLCJS_ROOT=str(root / "contracts"))
    try:
        proc = subprocess.run(
            [*solc_command(root), "--standard-json", "--base-path", str(root)],
            input=json.dumps(std_input).encode(),
            capture_output=True,
            cwd=root,
            env=env,
            timeout=timeout,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise CompileError(f"solc-js could not run: {exc}") from exc
    if proc.returncode != 0:
        raise CompileError(f"solc-js failed: {proc.stderr.decode(errors='replace').strip()}")
    try:
        output: dict[str, Any] = json.loads(proc.stdout)
    except ValueError as exc:
        raise CompileError(f"solc-js printed no JSON: {proc.stdout[:200]!r}") from exc
    errors = [e for e in output.get("errors", []) if e.get("severity") == "error"]
    if errors:
        raise CompileError("\n".join(str(e.get("formattedMessage", e)) for e in errors))
    return output


def compile_contracts(root: Path) -> dict[str, Any]:
    """Compiles our sources and returns ``{name: {abi, bytecode, ...}}`` for our own contracts."""
    output = run_solc(root, standard_json_input(root))
    contracts: dict[str, Any] = {}
    for source, by_name in output.get("contracts", {}).items():
        if not source.startswith("contracts/") or source.startswith("contracts/node_modules/"):
            continue
        for name, data in by_name.items():
            evm = data.get("evm", {})
            contracts[name] = {
                "name": name,
                "source": source,
                "abi": data.get("abi", []),
                "bytecode": evm.get("bytecode", {}).get("object", ""),
                "deployedBytecode": evm.get("deployedBytecode", {}).get("object", ""),
                "methodIdentifiers": evm.get("methodIdentifiers", {}),
                "storageLayout": data.get("storageLayout", {}),
                "metadata": data.get("metadata", ""),
            }
    return contracts


def cache_path(root: Path, digest: str) -> Path:
    return root / ".build" / f"{CACHE_PREFIX}{digest}.json"


def compiled(root: Path | None = None, *, force: bool = False) -> dict[str, Any]:
    """The compiled contracts as plain JSON data, from the cache when the sources are unchanged.

    The cache file is written atomically, so concurrent compiles (tests and ``openpay dev``)
    at worst both compile once.
    """
    root = root or project_root()
    digest = source_hash(root)
    path = cache_path(root, digest)
    if not force and path.exists():
        try:
            cached: dict[str, Any] = json.loads(path.read_text())
            return cached
        except ValueError:
            pass  # a torn file from an older writer: compile again
    contracts = {"solcVersion": SOLC_VERSION, "sourceHash": digest, "contracts": compile_contracts(root)}
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, prefix=".tmp-", delete=False) as handle:
        json.dump(contracts, handle)
        tmp = Path(handle.name)
    tmp.replace(path)
    for stale in path.parent.glob(f"{CACHE_PREFIX}*.json"):
        if stale != path:
            stale.unlink(missing_ok=True)
    return contracts


def ensure_solcx_link(root: Path | None = None) -> Path:
    """Makes ``<root>/.solcx/solc-v0.8.24`` point at the solc-js shim and returns the folder.

    ape-solidity only runs compilers named ``solc-v<version>`` inside ``$SOLCX_BINARY_PATH``;
    with this link (and ``SOLCX_BINARY_PATH=<root>/.solcx``) ``ape compile`` uses solc-js and
    never downloads a compiler. Idempotent.
    """
    root = root or project_root()
    folder = root / ".solcx"
    folder.mkdir(exist_ok=True)
    link = folder / f"solc-v{SOLC_VERSION}"
    target = Path("..") / "tools" / "solc-shim.js"
    if link.is_symlink() and Path(os.readlink(link)) == target:
        return folder
    tmp = folder / f".solc-v{SOLC_VERSION}.{os.getpid()}"
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(target)
    tmp.replace(link)
    return folder
