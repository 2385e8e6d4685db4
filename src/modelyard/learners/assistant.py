"""A grounded assistant: retrieve passages from an index, decide whether they can answer, hand over to a person
when an intent classifier says so, else have a chat model answer from the passages and cite them.

The decision to decline is made before any text is generated, on a retrieval score: by default the re-ranked score
of the first passage (`model.decline_on: reranked`), or the cosine similarity of the question to its closest chunk
(`cosine`, what bundles made before 2026-12-05 use). Its threshold is chosen on labelled validation questions
(answerable and not) when the assistant is trained, and stored in the bundle with the score it applies to. The chat
model is also told to say it does not know when the passages do not hold the answer; an answer that does is
reported as declined too.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from modelyard.fsutil import atomic_write_json
from modelyard.retrieval.index import CANDIDATES, Index, fuse
from modelyard.retrieval.lexical import tokenize

Kind = Literal["answer", "declined", "handover"]
# without validation questions; all-MiniLM-L6-v2 on SQuAD articles with the default re-ranking weights
# (docs/assistant.md); other encoders or weights need calibrating
DEFAULT_THRESHOLDS = {"cosine": 0.40, "reranked": 0.70}
GROUNDING = (
    "Answer the question in one short sentence using only these passages. If they do not contain the answer, "
    "reply exactly: I don't know."
)
# question words a sentence must be able to hold for its full share (docs/assistant.md: 3 declines "thanks" and
# "x" and leaves the example's calibrated metrics as they were)
SHARE_TERMS = 3
# words that point back at the previous question or only shape a question, rather than ask about something new
REFERRING = (
    "who what when where why how which whose whom it its they them their he she him her there then that this those "
    "these do does did is are was were be been has have had can could would will should about else also and"
)
SENTENCE_END = re.compile(r"(?<=[.!?])\s+|(?<=[。！？])")
SAYS_UNKNOWN = re.compile(r"^\W*(i\s+(do\s+not|don't|don’t)\s+know|i\s+cannot\s+answer|i'm\s+not\s+sure)", re.I)


@dataclass
class Reply:
    """What the assistant will say to the last user message: a fixed text (declined, handover), or a prompt the
    chat model completes. `citations` are the passages given to the model, best first."""

    kind: Kind
    content: str | None = None
    prompt: list[dict[str, str]] | None = None
    citations: list[dict[str, Any]] = field(default_factory=list)
    intent: dict[str, Any] | None = None
    retrieval_score: float = 0.0
    query: str = ""
    grounding: dict[str, Any] | None = None  # the passages a prompted chat model saw (logged; see `logged_prompt`)

    def info(self) -> dict[str, Any]:
        """The extra `assistant` field of an answer: why it was given."""
        return {"kind": self.kind, "intent": self.intent, "retrieval_score": round(self.retrieval_score, 4)}


def best_sentence_share(weights: dict[str, float], text: str) -> float:
    """The largest share of the question's words (idf-weighted: `weights`) that one sentence of `text` holds. The
    sentence that answers a question usually repeats most of its words; a passage that only shares its topic
    spreads them over several sentences. A question of fewer than SHARE_TERMS words gets that fraction of the share:
    any sentence holding the one word of "thanks" or "x" is no sign that it answers anything."""
    total = sum(weights.values())
    if not total:
        return 0.0
    sentences = (set(tokenize(sentence)) for sentence in SENTENCE_END.split(text))
    best = max((sum(w for term, w in weights.items() if term in words) for words in sentences), default=0.0)
    return best / total * min(1.0, len(weights) / SHARE_TERMS)


def passages_digest(passages: list[dict[str, Any]]) -> str:
    """sha256 of the passages' texts in order: a logged answer's passages are rebuilt from the index only when
    the index still holds exactly these texts."""
    return hashlib.sha256("\x1e".join(p["text"] for p in passages).encode("utf-8")).hexdigest()


def cite(citations: list[dict[str, Any]]) -> str:
    """The sources line appended to an answer: `[1] file § section`."""
    parts = [f"[{i}] {c['file']}" + (f" § {c['section']}" if c["section"] else "") for i, c in enumerate(citations, 1)]
    return "Sources: " + "; ".join(parts) if parts else ""


def choose_threshold(
    answerable: list[float], unanswerable: list[float], decline_rate: float | None = None
) -> dict[str, Any]:
    """The retrieval-score threshold chosen on labelled questions: with `decline_rate`, the lowest one that declines
    at least that share of the unanswerable questions (answering as much as that allows); otherwise the one with the
    best balanced accuracy (answerable questions answered, unanswerable ones declined), among equals the lowest."""
    scores = np.asarray(answerable + unanswerable, dtype=np.float64)
    truth = np.asarray([1] * len(answerable) + [0] * len(unanswerable))
    values = np.unique(scores)
    candidates = np.concatenate([[values[0] - 1e-6], (values[:-1] + values[1:]) / 2, [values[-1] + 1e-6]])
    best, best_score = float(candidates[-1]), -1.0
    for t in candidates:  # ascending
        kept = scores >= t
        recall = kept[truth == 1].mean() if len(answerable) else 1.0
        declined = (~kept[truth == 0]).mean() if len(unanswerable) else 1.0
        balanced = (recall + declined) / 2
        if decline_rate is not None:
            if declined >= decline_rate:
                best, best_score = float(t), float(balanced)
                break
        elif balanced > best_score + 1e-12:
            best, best_score = float(t), float(balanced)
    return {"threshold": round(best, 4), "balanced_accuracy": round(best_score, 4)}


class AssistantLearner:
    """Index + chat model (+ intent classifier) + the stored decline threshold. Trained without gradients: `fit`
    only calibrates the threshold on the validation questions."""

    module = None
    buckets_lengths = True  # each input is answered on its own; no length bucketing of a batch

    def __init__(self, index: Index, chat: Any, options: Any, intents: Any = None, state: dict | None = None) -> None:
        self.index = index
        self.chat = chat
        self.options = options
        self.intents = intents
        self.backbone = options.backbone
        # a bundle saved before the option existed declined on the cosine
        self.decline_on: str = options.decline_on if state is None else state.get("decline_on", "cosine")
        state = state or {}
        self.threshold: float | None = state.get("threshold", options.decline_threshold)
        self.calibration: dict[str, Any] = state.get("calibration", {})
        self._recent: dict[str, tuple[list[dict[str, Any]], float]] = {}  # query -> retrieval, oldest first

    @property
    def generator(self) -> Any:
        return self.chat.generator

    def train_defaults(self) -> dict[str, Any]:
        return {}

    # retrieval ---------------------------------------------------------------------------------------------

    def retrieve(self, query: str) -> tuple[list[dict[str, Any]], float]:
        """The passages for `query`, best first, and the retrieval score the decline threshold applies to: the first
        passage's re-ranked score, or the cosine of the query to its closest chunk (`decline_on`).

        Hybrid search (dense + BM25, rank fusion) proposes `candidates` chunks; they are re-ordered by
        `rerank_weight` x cosine + (1 - rerank_weight) x BM25 / best BM25 of the candidates + `sentence_weight` x
        the best sentence's share of the question's words, which puts the chunk holding the answer first more often
        than rank fusion alone (docs/assistant.md)."""
        cached = self._recent.get(query)
        if cached is not None:
            return cached
        opts, index = self.options, self.index
        vector = index.embedder.embed([query], "query")[0]
        depth = min(len(index.rows), CANDIDATES)
        scores, ids = index.vectors.search(vector[None, :], depth)
        dense = [(int(i), float(s)) for i, s in zip(ids[0], scores[0], strict=True) if i >= 0]
        lexical_all = index.lexical.scores(query).astype(np.float64)
        top_lexical = np.argsort(-lexical_all, kind="stable")[:depth]
        lexical = [(int(i), float(lexical_all[i])) for i in top_lexical if lexical_all[i] > 0]
        fused = [row for row, _ in fuse([dense, lexical])[: opts.candidates]]
        top_cosine = dense[0][1] if dense else 0.0
        if not fused:
            return [], top_cosine if self.decline_on == "cosine" else 0.0
        cosine = np.asarray([float(index.vectors.reconstruct(i) @ vector) for i in fused])
        bm25 = lexical_all[fused]
        bm25 = bm25 / bm25.max() if bm25.max() > 0 else bm25
        combined = opts.rerank_weight * cosine + (1 - opts.rerank_weight) * bm25
        if opts.sentence_weight:
            weights = index.lexical.idf(sorted(set(tokenize(query))))
            share = [best_sentence_share(weights, index.rows[i]["text"]) for i in fused]
            combined = combined + opts.sentence_weight * np.asarray(share)
        order = np.argsort(-combined, kind="stable")[: opts.passages]
        passages = [
            {**_row(index.rows[fused[j]]), "chunk_id": fused[j], "score": round(float(combined[j]), 4)} for j in order
        ]
        score = top_cosine if self.decline_on == "cosine" else float(combined[order[0]])
        if len(self._recent) >= 1024:
            self._recent.pop(next(iter(self._recent)))
        self._recent[query] = (passages, score)
        return passages, score

    def _grounded(self, messages: list[dict[str, str]]) -> tuple[list[dict[str, Any]], float, str]:
        """Passages for the last user message; a follow-up that finds nothing on its own ("and when?") is searched
        again together with the user's previous message. The joined search is kept only when its passages hold
        what the follow-up itself asks about (`_continues`): a new question the documents do not cover ("the
        capital of Mongolia?" after a Super Bowl question) is declined, not answered from the previous question's
        passages."""
        users = [m["content"] for m in messages if m["role"] == "user"]
        query = users[-1] if users else ""
        passages, score = self.retrieve(query)
        if score < self._threshold() and len(users) > 1:
            joined = f"{users[-2]} {users[-1]}"
            again, again_score = self.retrieve(joined)
            if again_score > score and _continues(query, again, self.index.lexical.idf):
                return again, again_score, joined
        return passages, score, query

    def _threshold(self) -> float:
        return DEFAULT_THRESHOLDS[self.decline_on] if self.threshold is None else self.threshold

    # answering ---------------------------------------------------------------------------------------------

    def handover(self, text: str) -> dict[str, Any] | None:
        """The intent of `text` when it is one to hand over with enough confidence, else None."""
        settings = self.options.handover
        if self.intents is None or settings is None:
            return None
        guess = self.intents.predict([text], top_k=1)[0]
        if guess["label"] in settings.intents and guess["score"] >= settings.min_confidence:
            return {"label": guess["label"], "score": round(float(guess["score"]), 4)}
        return None

    def plan(self, messages: list[dict[str, str]]) -> Reply:
        """Decide how to answer the conversation's last user message (retrieval and intent, no generation)."""
        last = next((m["content"] for m in reversed(messages) if m["role"] == "user"), "")
        intent = self.handover(last)
        if intent is not None:
            text = self.options.handover.message.format(intent=intent["label"].replace("_", " "))
            return Reply("handover", text, intent=intent, query=last)
        passages, score, query = self._grounded(messages)
        if not passages or score < self._threshold():
            return Reply("declined", self.options.decline_message, retrieval_score=score, query=query)
        citations = [{k: p[k] for k in ("file", "section", "chunk_id", "score")} for p in passages]
        grounding = {"chunk_ids": [p["chunk_id"] for p in passages], "sha256": passages_digest(passages)}
        prompt = self.grounded_prompt(messages, passages)
        return Reply("answer", None, prompt, citations, None, score, query, grounding)

    def grounded_prompt(self, messages: list[dict[str, str]], passages: list[dict[str, Any]]) -> list[dict[str, str]]:
        """What the chat model is given: the system prompt (the client's system or developer messages after
        `model.system_prompt`), the remembered turns, and the last user message after the passages. The passages and
        the rule to answer only from them go into the last user turn, plain (small models copy file names and
        headings they see), so a client's instructions add to the grounding and never replace it; the citations are
        attached by `finish`, not written by the model."""
        numbered = "\n\n".join(f"Passage {i}: {p['text']}" for i, p in enumerate(passages, start=1))
        turns = [m for m in messages if m["role"] in ("user", "assistant")]
        history = turns[:-1][-self.options.memory.turns :] if self.options.memory.turns else []
        question = f"{numbered}\n\n{GROUNDING}\n\nQuestion: {turns[-1]['content']}"
        client = [m["content"] for m in messages if m["role"] in ("system", "developer") and m["content"].strip()]
        system = {"role": "system", "content": "\n\n".join([self.options.system_prompt, *client])}
        return [system, *history, {"role": "user", "content": question}]

    def logged_prompt(self, messages: list[dict[str, str]], output: Any) -> list[dict[str, str]] | None:
        """The prompt the chat model saw for a logged answer: its conversation and the passages its `grounding`
        names, rebuilt from this bundle's index (preference pairs train the model on it). None when the model was
        not prompted (declined on the retrieval score, handed over) or the index no longer holds those passages."""
        grounding = output.get("grounding") if isinstance(output, dict) else None
        if not isinstance(grounding, dict) or not messages or messages[-1]["role"] != "user":
            return None
        ids = grounding.get("chunk_ids") or []
        if not all(isinstance(i, int) and 0 <= i < len(self.index.rows) for i in ids):
            return None
        passages = [self.index.rows[i] for i in ids]
        if not passages or passages_digest(passages) != grounding.get("sha256"):
            return None
        return self.grounded_prompt(messages, passages)

    def finish(self, reply: Reply, text: str) -> tuple[str, Reply]:
        """The final answer text for a generated `text`: the sources line appended; an answer that says it does not
        know becomes a decline (no sources)."""
        if reply.kind != "answer":
            return reply.content or "", reply
        if SAYS_UNKNOWN.search(text.strip()):
            declined = Reply("declined", text.strip(), retrieval_score=reply.retrieval_score, query=reply.query)
            return declined.content, declined
        return f"{text.strip()}\n\n{cite(reply.citations)}", reply

    def answer(self, messages: list[dict[str, str]], **options: Any) -> dict[str, Any]:
        """Plan, generate when needed, finish: one whole answer (predict, evaluate, benchmarks). When the chat model
        was prompted, its `grounding` comes with the answer, so that feedback on it can rebuild the prompt."""
        planned = self.plan(messages)
        text = planned.content or ""
        if planned.kind == "answer":
            self.chat.module.eval()
            text = self.generator.complete([planned.prompt], **options)[0]["text"]
        content, reply = self.finish(planned, text)
        grounding = {"grounding": planned.grounding} if planned.grounding else {}
        return {"content": content, "citations": reply.citations, **reply.info(), **grounding}

    def logged_output(self, answer: dict[str, Any]) -> dict[str, Any]:
        """An answer as the prediction log keeps it, in the shape of a chat completion's (serving.assistant_routes):
        the model's words without the sources line (what a correction replaces), citations, kind, grounding."""
        sources = f"\n\n{cite(answer['citations'])}"
        text = answer["content"].removesuffix(sources) if answer["kind"] == "answer" else answer["content"]
        info = {key: answer[key] for key in ("kind", "intent", "retrieval_score")}
        grounding = {"grounding": answer["grounding"]} if "grounding" in answer else {}
        return {"text": text, "citations": answer["citations"], "assistant": info, **grounding}

    def generate(self, prompt: str | list[dict[str, str]], **options: Any) -> str:
        messages = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else prompt
        return self.answer(messages, **options)["content"]

    def predict(self, inputs: list[Any], top_k: int = 1) -> list[dict[str, Any]]:
        """The answer to each input: a question (str) or a list of chat messages."""
        return [self.answer([{"role": "user", "content": x}] if isinstance(x, str) else x) for x in inputs]

    # calibration and metrics --------------------------------------------------------------------------------

    def fit(self, train: Any, validation: list[dict[str, Any]] | None) -> None:
        """Choose the decline threshold on the validation questions, unless the config fixes it."""
        if self.options.decline_threshold is not None or not validation:
            source = "model.decline_threshold" if self.options.decline_threshold is not None else "default"
            self.calibration = {"source": source, "threshold": self._threshold()}
            return
        scores = [self.retrieve(q["question"])[1] for q in validation]
        answerable = [s for s, q in zip(scores, validation, strict=True) if q["answerable"]]
        unanswerable = [s for s, q in zip(scores, validation, strict=True) if not q["answerable"]]
        chosen = choose_threshold(answerable, unanswerable, self.options.decline_rate)
        self.threshold = chosen["threshold"]
        self.calibration = {
            "source": "validation questions",
            "rule": "best balanced accuracy"
            if self.options.decline_rate is None
            else f"decline >= {self.options.decline_rate}",
            "answerable": len(answerable),
            "unanswerable": len(unanswerable),
            **chosen,
        }

    def question_outcomes(self, questions: list[dict[str, Any]]) -> dict[str, np.ndarray]:
        """Per question, as 0/1 arrays: `answerable`, `declined`, `cited` (answered, a gold answer in the top cited
        passage) and `anywhere` (answered, a gold answer in some cited passage)."""
        columns: dict[str, list[bool]] = {"answerable": [], "declined": [], "cited": [], "anywhere": []}
        for q in questions:
            passages, score = self.retrieve(q["question"])
            declined = not passages or score < self._threshold()
            holds = [any(a in p["text"] for a in q["answers"]) for p in passages] if q["answerable"] else []
            columns["answerable"].append(bool(q["answerable"]))
            columns["declined"].append(declined)
            columns["cited"].append(not declined and bool(holds) and holds[0])
            columns["anywhere"].append(not declined and any(holds))
        return {name: np.asarray(values, dtype=np.float64) for name, values in columns.items()}

    def evaluate(self, questions: list[dict[str, Any]]) -> dict[str, Any]:
        """Retrieval-level metrics of the answers (no generation): among answerable questions, the share answered
        with a gold answer string in the top cited passage (`cited_answer_rate`) and the share declined; among
        unanswerable ones, the share declined (`decline_rate`); `answer_in_passages`: a cited passage holds it;
        `balanced_accuracy`: the mean of the shares answered and declined, the calibration's definition."""
        o = self.question_outcomes(questions)
        answerable, unanswerable = o["answerable"] == 1, o["answerable"] == 0
        out: dict[str, Any] = {"threshold": self._threshold()}
        if answerable.any():
            out["cited_answer_rate"] = float(o["cited"][answerable].mean())
            out["answerable_declined"] = float(o["declined"][answerable].mean())
            out["answer_in_passages"] = float(o["anywhere"][answerable].mean())
        if unanswerable.any():
            out["decline_rate"] = float(o["declined"][unanswerable].mean())
        if answerable.any() and unanswerable.any():  # as the threshold is chosen: answerable answered, others declined
            out["balanced_accuracy"] = (1 - out["answerable_declined"] + out["decline_rate"]) / 2
        out["questions"] = {"answerable": int(answerable.sum()), "unanswerable": int(unanswerable.sum())}
        return out

    # bundle ------------------------------------------------------------------------------------------------

    def save(self, directory: Path) -> dict[str, Any]:
        """The index folder, the chat and intent bundles when they are bundles (copied whole, so the assistant's
        bundle stands alone), and assistant.json with the threshold and how it was chosen."""
        shutil.copytree(self.index.folder, directory / "index")
        for name, source in (("chat", getattr(self.chat, "bundle_path", None)), ("intents", self._intents_path())):
            if source is not None:
                shutil.copytree(source, directory / name, ignore=shutil.ignore_patterns("checkpoints"))
        state = {"threshold": self._threshold(), "decline_on": self.decline_on, "calibration": self.calibration}
        atomic_write_json(directory / "assistant.json", state)
        return {"chat_model": self.backbone, "encoder": self.index.manifest["encoder"], **state}

    def _intents_path(self) -> Path | None:
        return None if self.intents is None else getattr(self.intents, "bundle_path", None)


def _continues(question: str, joined: list[dict[str, Any]], idf: Any) -> bool:
    """Whether passages found with the previous question can answer `question` as its follow-up: it has no words
    of its own beyond question words and pronouns ("and when?", "where was it played?" keeps "play"), or the
    passages hold at least half of them, idf-weighted (a word no chunk holds weighs most, so "Mongolia" fails)."""
    terms = sorted(set(tokenize(question)) - _referring())
    if not terms:
        return True
    weights = idf(terms)
    held = set().union(*(tokenize(p["text"]) for p in joined))
    return sum(w for term, w in weights.items() if term in held) >= sum(weights.values()) / 2


@functools.cache
def _referring() -> frozenset[str]:
    return frozenset(tokenize(REFERRING))


def _row(row: dict[str, Any]) -> dict[str, Any]:
    return {"file": row["file"], "section": row["section"], "text": row["text"]}


def read_state(directory: Path) -> dict[str, Any]:
    return json.loads((directory / "assistant.json").read_text(encoding="utf-8"))
