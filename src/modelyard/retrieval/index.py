"""An index folder built from a documents folder: the chunks, their vectors (faiss) and BM25, updated in place
by per-file content hashes (changed files re-embedded, deleted ones dropped, the rest reused).

    modelyard-index.json   manifest: encoder, chunking, and every file's sha256 and chunk count
    chunks.jsonl           one chunk per line (file, section, text), row i of both indexes
    vectors.faiss          faiss IndexFlatIP over the unit vectors: exact cosine search
    bm25/                  bm25s's arrays and vocabulary (JSON and .npy, no pickle)

The whole folder is written beside the old one and swapped in (fsutil.replace_dir), so a crash mid-update
leaves the previous index intact. Hybrid search fuses the dense and BM25 rankings by reciprocal rank fusion.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np

from modelyard.errors import DataError
from modelyard.fsutil import atomic_write_bytes, atomic_write_json, replace_dir, sha256_file
from modelyard.retrieval import chunking
from modelyard.retrieval.encoder import DEFAULT_ENCODER, TextEmbedder, encoder_folder
from modelyard.retrieval.lexical import Lexical
from modelyard.retrieval.readers import SUFFIXES, list_documents, read_document

MANIFEST = "modelyard-index.json"
FORMAT = 1
RRF_K = 60  # reciprocal rank fusion's constant (Cormack, Clarke and Buettcher 2009)
CANDIDATES = 100  # how deep each ranking goes into a hybrid fusion
Mode = Literal["hybrid", "dense", "bm25"]
Progress = Callable[[str, int, int], None]  # (stage, done, total)


@dataclass
class Hit:
    file: str
    section: str
    text: str
    score: float
    chunk: int  # row in chunks.jsonl


@dataclass
class UpdateReport:
    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: int = 0
    without_text: list[str] = field(default_factory=list)  # e.g. scanned PDFs: no text layer to index
    embedded_chunks: int = 0
    chunks: int = 0
    rebuilt: str | None = None  # why every file was re-embedded, when settings changed
    seconds: float = 0.0


def is_index(folder: str | Path) -> bool:
    return (Path(folder) / MANIFEST).is_file()


def build(
    docs: Path,
    output: Path,
    encoder: str | None = None,
    chunk_size: int | None = None,
    overlap: int | None = None,
    progress: Progress | None = None,
) -> UpdateReport:
    """Index `docs` into `output`, reusing what an index already there holds for files whose bytes are unchanged."""
    started = time.perf_counter()
    notify = progress or (lambda *_: None)
    previous = _previous(output)
    old = previous.manifest if previous else {}
    settings = {
        "encoder": encoder or old.get("encoder") or DEFAULT_ENCODER,
        "chunk_size": chunk_size or old.get("chunk_size") or chunking.DEFAULT_SIZE,
        "overlap": overlap if overlap is not None else old.get("overlap", chunking.DEFAULT_OVERLAP),
    }
    given = "" if overlap is not None else "the existing index's" if "overlap" in old else "the default"
    chunking.check(settings["chunk_size"], settings["overlap"], overlap_from=given)
    encoder_folder(settings["encoder"])
    paths = list_documents(docs)
    if not paths:
        raise DataError(f"{docs} holds no documents", f"add {', '.join(sorted(SUFFIXES))} files to it")
    report = UpdateReport()
    if previous and any(old.get(k) != v for k, v in settings.items()):
        report.rebuilt = "the encoder or chunking changed: every file is embedded again"
        previous = None
    old_files = old.get("files", {})
    files, pending = {}, []  # pending: (file, its chunks) to embed
    for done, path in enumerate(paths, start=1):
        name = path.relative_to(docs).as_posix()
        digest = sha256_file(path)
        same = old_files.get(name, {}).get("sha256") == digest
        if same:
            report.unchanged += 1
        else:
            (report.changed if name in old_files else report.added).append(name)
        if same and previous:
            files[name] = old_files[name]
        else:
            pieces = chunking.chunk_sections(name, read_document(path), settings["chunk_size"], settings["overlap"])
            files[name] = {"sha256": digest, "chunks": len(pieces)}
            pending.append((name, pieces))
        if not files[name]["chunks"]:
            report.without_text.append(name)
        notify("reading", done, len(paths))
    report.removed = sorted(set(old_files) - set(files))
    fresh = [c for _, pieces in pending for c in pieces]
    if fresh or not previous:
        embedder = TextEmbedder.load(settings["encoder"])
        dim, precision = embedder.dim, embedder.precision
        counter = {"done": 0}

        def embedded(n: int) -> None:
            counter["done"] += n
            notify("embedding", counter["done"], len(fresh))

        new_vectors = embedder.embed([c.text for c in fresh], "passage", embedded)
    else:  # only deletions: nothing to embed, no encoder to load
        dim, precision = old["dim"], old["precision"]
        new_vectors = np.zeros((0, dim), dtype=np.float32)
    report.embedded_chunks = len(fresh)
    rows, vectors = _assemble(files, pending, fresh, new_vectors, previous, dim)
    report.chunks = len(rows)
    if not rows:
        raise DataError(f"no text found in the documents under {docs}", "scanned PDFs need OCR before indexing")
    manifest = {
        "format": FORMAT,
        "kind": "retrieval-index",
        **settings,
        "dim": dim,
        "precision": precision,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "documents": str(docs.resolve()),
        "chunks": len(rows),
        "files": files,
    }
    _write(output, manifest, rows, vectors, notify)
    report.seconds = time.perf_counter() - started
    return report


@dataclass
class _Previous:
    manifest: dict[str, Any]
    rows: list[dict[str, Any]]
    vectors: np.ndarray


def _previous(output: Path) -> _Previous | None:
    if not output.exists():
        return None
    if not is_index(output):
        if output.is_dir() and not any(output.iterdir()):
            return None
        raise DataError(
            f"{output} exists and is not a modelyard index", "choose a new --output folder (it is never overwritten)"
        )
    index = Index.load(output)
    return _Previous(index.manifest, index.rows, index.vectors.reconstruct_n(0, index.vectors.ntotal))


def _assemble(files, pending, fresh, new_vectors, previous, dim) -> tuple[list[dict[str, Any]], np.ndarray]:
    """Rows and vectors in file order: reused ones copied from the previous index, the others just embedded."""
    reused: dict[str, list[int]] = {}
    if previous:
        for i, row in enumerate(previous.rows):
            reused.setdefault(row["file"], []).append(i)
    starts, at = {}, 0
    for name, pieces in pending:
        starts[name] = (at, len(pieces))
        at += len(pieces)
    rows, parts = [], []
    for name in files:
        if name in starts:
            first, count = starts[name]
            rows += [{"file": c.file, "section": c.section, "text": c.text} for c in fresh[first : first + count]]
            parts.append(new_vectors[first : first + count])
        else:
            old = reused.get(name, [])
            rows += [previous.rows[i] for i in old]
            parts.append(previous.vectors[old])
    vectors = np.concatenate(parts) if parts else np.zeros((0, dim), dtype=np.float32)
    return rows, np.ascontiguousarray(vectors, dtype=np.float32)


def _write(output: Path, manifest: dict[str, Any], rows: list[dict], vectors: np.ndarray, notify: Progress) -> None:
    import faiss

    notify("writing", 0, 1)
    output.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{output.name}.", dir=output.parent))
    try:
        flat = faiss.IndexFlatIP(vectors.shape[1])
        flat.add(vectors)
        atomic_write_bytes(staging / "vectors.faiss", faiss.serialize_index(flat).tobytes())
        lines = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
        atomic_write_bytes(staging / "chunks.jsonl", lines.encode("utf-8"))
        Lexical.build([row["text"] for row in rows]).save(staging / "bm25")
        atomic_write_json(staging / MANIFEST, manifest)
    except BaseException:
        import shutil

        shutil.rmtree(staging, ignore_errors=True)
        raise
    replace_dir(staging, output)
    notify("writing", 1, 1)


REINDEX = "delete the folder and run `modelyard index` (or train) again"


def read_index(folder: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The manifest and chunk rows of an index folder; a DataError naming the damaged file (and line) otherwise.
    `serve` calls it before starting, so a damaged index is one message, not a server traceback."""
    if not is_index(folder):
        raise DataError(f"{folder} is not a modelyard index (no {MANIFEST})", "build one with `modelyard index`")
    try:
        manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (ValueError, OSError) as err:
        raise DataError(f"{folder / MANIFEST}: not a readable index manifest ({err})", REINDEX) from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        found = manifest.get("format") if isinstance(manifest, dict) else None
        raise DataError(f"{folder}: index format {found} is not {FORMAT}", REINDEX)
    rows, path = [], folder / "chunks.jsonl"
    try:
        with path.open(encoding="utf-8") as f:
            for number, line in enumerate(f, start=1):
                row = _chunk_row(line)
                if row is None:
                    raise DataError(f"{path}: line {number} is not a chunk (JSON with file, section, text)", REINDEX)
                rows.append(row)
    except (OSError, UnicodeDecodeError) as err:
        raise DataError(f"{path}: unreadable ({err})", REINDEX) from None
    return manifest, rows


def _chunk_row(line: str) -> dict[str, Any] | None:
    try:
        row = json.loads(line)
    except ValueError:
        return None
    fields = ("file", "section", "text")
    return row if isinstance(row, dict) and all(isinstance(row.get(k), str) for k in fields) else None


class Index:
    """A loaded index: search by meaning, by words, or both."""

    def __init__(self, folder: Path, manifest: dict[str, Any], rows: list[dict], vectors: Any, lexical: Lexical):
        self.folder, self.manifest, self.rows, self.vectors, self.lexical = folder, manifest, rows, vectors, lexical
        self._embedder: TextEmbedder | None = None

    @classmethod
    def load(cls, folder: str | Path) -> Index:
        import faiss

        folder = Path(folder)
        manifest, rows = read_index(folder)
        vectors = faiss.deserialize_index(np.fromfile(folder / "vectors.faiss", dtype=np.uint8))
        if vectors.ntotal != len(rows):
            raise DataError(f"{folder}: {vectors.ntotal} vectors for {len(rows)} chunks", "index again")
        return cls(folder, manifest, rows, vectors, Lexical.load(folder / "bm25"))

    @property
    def embedder(self) -> TextEmbedder:
        if self._embedder is None:
            self._embedder = TextEmbedder.load(self.manifest["encoder"], self.manifest.get("precision", "auto"))
        return self._embedder

    def search(self, queries: list[str], k: int = 5, mode: Mode = "hybrid") -> list[list[Hit]]:
        """The k best chunks for each query, best first."""
        depth = min(len(self.rows), max(k, CANDIDATES) if mode == "hybrid" else k)
        dense: list[list[tuple[int, float]]] = [[] for _ in queries]
        if mode in ("dense", "hybrid") and depth:
            scores, ids = self.vectors.search(self.embedder.embed(queries, "query"), depth)
            dense = [
                [(int(i), float(s)) for i, s in zip(r_ids, r_scores, strict=True) if i >= 0]
                for r_ids, r_scores in zip(ids, scores, strict=True)
            ]
        results = []
        for q, query in enumerate(queries):
            lexical = _top(self.lexical.scores(query), depth) if mode in ("bm25", "hybrid") else []
            ranked = {"dense": dense[q], "bm25": lexical, "hybrid": None}[mode]
            if ranked is None:
                ranked = fuse([dense[q], lexical])
            results.append([self._hit(i, s) for i, s in ranked[:k]])
        return results

    def _hit(self, i: int, score: float) -> Hit:
        row = self.rows[i]
        return Hit(row["file"], row["section"], row["text"], round(score, 6), i)


def _top(scores: np.ndarray, k: int) -> list[tuple[int, float]]:
    """The k highest-scoring rows with a score above zero (a chunk sharing no word with the query is no match)."""
    k = min(k, int((scores > 0).sum()))
    if k == 0:
        return []
    part = np.argpartition(-scores, k - 1)[:k]
    part = part[np.argsort(-scores[part], kind="stable")]
    return [(int(i), float(scores[i])) for i in part]


def fuse(rankings: list[list[tuple[int, float]]], k: int = RRF_K) -> list[tuple[int, float]]:
    """Reciprocal rank fusion: each row scores sum(1 / (k + rank)) over the rankings it appears in (rank from 1).
    Rank-based, so cosine similarities and BM25 scores need no common scale."""
    fused: dict[int, float] = {}
    for ranking in rankings:
        for rank, (row, _) in enumerate(ranking, start=1):
            fused[row] = fused.get(row, 0.0) + 1.0 / (k + rank)
    return sorted(fused.items(), key=lambda item: (-item[1], item[0]))


def hit_dict(hit: Hit) -> dict[str, Any]:
    return asdict(hit)
