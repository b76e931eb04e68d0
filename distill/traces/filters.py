"""Before any teacher call: duplicate problems and benchmark problems are taken out.

- Duplicates: the same text after normalisation (lower case, white space collapsed), or a near-duplicate — word
  trigram sets whose MinHash (``datasketch``) Jaccard similarity to an earlier problem's reaches the threshold
  (candidates from LSH, then confirmed on the exact sets).
- Contamination, as open-r1's ``decontaminate.py``: a problem sharing any word 8-gram with a benchmark problem
  (after the same normalisation) is contaminated by that suite; a problem shorter than 8 words counts when it
  equals a benchmark problem.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from distill.evaluation.suites import Problem

NGRAM = 8  # open-r1's decontamination n
SHINGLE = 3  # words per shingle for near-duplicates
NUM_PERM = 128


def normalize(text: str) -> str:
    return " ".join(text.lower().split())


def word_ngrams(text: str, n: int) -> set[tuple[str, ...]]:
    words = normalize(text).split()
    if len(words) < n:
        return {tuple(words)} if words and n == SHINGLE else set()
    return {tuple(words[i:i + n]) for i in range(len(words) - n + 1)}


def duplicates(problems: Sequence[Problem], jaccard: float) -> dict[str, str]:
    """{problem id: id of the earlier problem it repeats}."""
    from datasketch import MinHash, MinHashLSH

    found: dict[str, str] = {}
    exact: dict[str, str] = {}
    near = jaccard < 1.0
    lsh = MinHashLSH(threshold=jaccard, num_perm=NUM_PERM) if near else None
    shingles: dict[str, set[tuple[str, ...]]] = {}
    position = {p.id: i for i, p in enumerate(problems)}
    for p in problems:
        key = normalize(p.prompt)
        if key in exact:
            found[p.id] = exact[key]
            continue
        exact[key] = p.id
        if lsh is None:
            continue
        grams = word_ngrams(p.prompt, SHINGLE)
        signature = MinHash(num_perm=NUM_PERM)
        signature.update_batch([" ".join(g).encode() for g in grams])
        earlier = [c for c in lsh.query(signature) if _jaccard(grams, shingles[c]) >= jaccard]
        if earlier:
            found[p.id] = min(earlier, key=position.__getitem__)
            continue
        shingles[p.id] = grams
        lsh.insert(p.id, signature)
    return found


def _jaccard(a: set, b: set) -> float:
    return len(a & b) / len(a | b) if a or b else 1.0


def contamination(problems: Iterable[Problem], benchmarks: dict[str, Sequence[str]]) -> dict[str, list[str]]:
    """{problem id: the suites it is contaminated by}, for the problems that are."""
    index = {name: _benchmark_index(texts) for name, texts in benchmarks.items()}
    out: dict[str, list[str]] = {}
    for p in problems:
        grams, whole = word_ngrams(p.prompt, NGRAM), normalize(p.prompt)
        hits = [name for name, (suite_grams, suite_texts) in index.items()
                if whole in suite_texts or not grams.isdisjoint(suite_grams)]
        if hits:
            out[p.id] = hits
    return out


def _benchmark_index(texts: Sequence[str]) -> tuple[set[tuple[str, ...]], set[str]]:
    grams: set[tuple[str, ...]] = set()
    for t in texts:
        grams |= word_ngrams(t, NGRAM)
    return grams, {normalize(t) for t in texts}
