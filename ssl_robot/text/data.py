"""Text data: the pre-training corpus, sentence splitting, NSP pairs and WordNet glosses.

Everything here is pure python over strings and token-id lists (no torch), so it is
tested against hand-made inputs.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
import logging
from pathlib import Path
import random
import re

from ssl_robot.text import TextError

log = logging.getLogger('ssl_robot.text')

#: Debian's python3.11-doc: reST sources of the Python documentation (~11 MB of English).
PYTHON_DOCS = Path('/usr/share/doc/python3.11/html/_sources')
#: Debian's wordnet-base: WordNet 3.0 data files.
WORDNET_DIR = Path('/usr/share/wordnet')
#: Debian's manpages and manpages-dev: the man pages of the Linux kernel's and the C
#: library's interfaces (licences GPL-2+, BSD and verbatim-copying, see
#: /usr/share/doc/manpages/copyright); their dpkg file lists say which pages are theirs.
MAN_ROOT = Path('/usr/share/man')
MAN_PACKAGES = ('manpages', 'manpages-dev')
#: Man page sections of the labelled task: system calls, library functions, special
#: files, file formats, overviews.
MAN_SECTIONS = ('2', '3', '4', '5', '7')
DPKG_INFO = Path('/var/lib/dpkg/info')
#: Text files a corpus folder may hold.
CORPUS_PATTERNS = ('*.rst.txt', '*.txt', '*.rst', '*.md')

#: WordNet 3.0 lexicographer files, indexed by lex_filenum (field 2 of a data line).
LEXNAMES = (
    'adj.all', 'adj.pert', 'adv.all', 'noun.Tops', 'noun.act', 'noun.animal',
    'noun.artifact', 'noun.attribute', 'noun.body', 'noun.cognition', 'noun.communication',
    'noun.event', 'noun.feeling', 'noun.food', 'noun.group', 'noun.location', 'noun.motive',
    'noun.object', 'noun.person', 'noun.phenomenon', 'noun.plant', 'noun.possession',
    'noun.process', 'noun.quantity', 'noun.relation', 'noun.shape', 'noun.state',
    'noun.substance', 'noun.time', 'verb.body', 'verb.change', 'verb.cognition',
    'verb.communication', 'verb.competition', 'verb.consumption', 'verb.contact',
    'verb.creation', 'verb.emotion', 'verb.motion', 'verb.perception', 'verb.possession',
    'verb.social', 'verb.stative', 'verb.weather', 'adj.ppl',
)
WORDNET_POS_FILES = ('data.noun', 'data.verb', 'data.adj', 'data.adv')

_ROLE = re.compile(r':[\w:.+-]+:`(?:[^`<]*<)?~?!?([^`>]+)>?`')  # :func:`name` -> name
_LITERAL = re.compile(r'``([^`]+)``')
_LINK = re.compile(r'`([^`<]+?)\s*(?:<[^`>]*>)?`_{1,2}')
_EMPH = re.compile(r'(?<!\w)\*{1,2}([^*\n]+?)\*{1,2}(?!\w)')
_UNDERLINE = re.compile(r'^([=\-~^"\'`#*+.:_])\1{2,}\s*$')
# A sentence ends at . ! ? followed by space and an upper-case letter, quote or bracket.
_SENTENCE_END = re.compile(r'(?<=[.!?])["\')\]]?\s+(?=["\'(\[]?[A-Z])')
_ABBREV_END = re.compile(r'(?:\b(?:e\.g|i\.e|etc|vs|cf|Mr|Dr|No|approx)|(?-i:\b[A-Z]))\.$',
                         re.IGNORECASE)


def clean_rst(text: str) -> list[str]:
    """Extract prose paragraphs from reST source, inline markup reduced to its text.

    Directives, comments, headings, tables, lists-of-options and indented blocks
    (code, directive bodies) are dropped: they are not sentences and would make the
    sentence tasks trivial or noisy.

    Args:
        text: reST (or plain) text.

    Returns:
        Paragraphs, each one line of prose.
    """
    paragraphs, current = [], []
    for line in text.splitlines() + ['']:
        stripped = line.strip()
        if not stripped:
            if current:
                paragraphs.append(' '.join(current))
                current = []
            continue
        if line[0].isspace():
            # Indented: a code block, directive body or block quote, not running prose.
            continue
        if (stripped.startswith(('..', '|', '+', '>>>', '::', '* ', '- ', '#'))
                or _UNDERLINE.match(stripped)):
            if current:  # a heading underline: the collected line was a title
                current = [] if _UNDERLINE.match(stripped) else current
            continue
        current.append(stripped)
    out = []
    for para in paragraphs:
        if para.endswith(':'):  # 'as follows::' introduced a dropped code block
            para = para.rstrip(':').rstrip(' .') + '.'
        para = _ROLE.sub(r'\1', para)
        para = _LITERAL.sub(r'\1', para)
        para = _LINK.sub(r'\1', para)
        para = _EMPH.sub(r'\1', para)
        para = re.sub(r'\s+', ' ', para).strip()
        if len(para) >= 40 and sum(c.isalpha() for c in para) > 0.6 * len(para):
            out.append(para)
    return out


def split_sentences(paragraph: str) -> list[str]:
    """Split a paragraph into sentences (rule-based: . ! ? then an upper-case start).

    Abbreviations like "e.g." and "i.e." do not end a sentence.
    """
    parts = _SENTENCE_END.split(paragraph)
    sentences: list[str] = []
    for part in parts:
        part = part.strip()
        if not part:
            continue
        if sentences and _ABBREV_END.search(sentences[-1]):
            sentences[-1] += ' ' + part
        else:
            sentences.append(part)
    return sentences


def corpus_files(root: Path | str) -> list[Path]:
    """Text files under `root` (sorted, so a corpus is read in the same order everywhere).

    Raises:
        TextError: When `root` does not exist or holds no text files.
    """
    root = Path(root)
    if not root.exists():
        hint = (' (install Debian package python3.11-doc: make eval-data)'
                if root == PYTHON_DOCS else '')
        raise TextError(f'{root}: corpus folder not found{hint}')
    if root.is_file():
        return [root]
    files = sorted({p for pattern in CORPUS_PATTERNS for p in root.rglob(pattern)
                    if p.is_file()})
    if not files:
        raise TextError(f'{root}: no text files ({", ".join(CORPUS_PATTERNS)})')
    return files


def clean_plain(text: str) -> list[str]:
    """Paragraphs of a plain-text file (.txt), whitespace collapsed.

    A file with blank lines holds wrapped prose: its paragraphs are the blank-line
    separated blocks. A file without (reviews, log lines, one sentence per line) has one
    paragraph per line. A paragraph needs a letter; nothing else is filtered (no reST
    rules: a log line may be short and full of digits).
    """
    lines = text.splitlines()
    if any(not line.strip() for line in lines[:-1]):
        blocks = re.split(r'\n\s*\n', text)
    else:
        blocks = lines
    out = [re.sub(r'\s+', ' ', block).strip() for block in blocks]
    return [para for para in out if any(c.isalpha() for c in para)]


def _is_rst(path: Path) -> bool:
    return path.name.endswith(('.rst', '.rst.txt', '.md'))


def load_corpus(root: Path | str = PYTHON_DOCS, *, max_chars: int = 0,
                min_rst_sentences: int = 2) -> list[list[str]]:
    """Read a folder of text into documents, each a list of sentences in order.

    reST and Markdown files (.rst, .rst.txt, .md) go through `clean_rst`, plain-text
    files (.txt) through `clean_plain`; each paragraph is split into sentences.

    Args:
        root: A folder of .rst.txt/.txt/.rst/.md files, or one file.
        max_chars: Stop after about this many characters of prose (0: all).
        min_rst_sentences: Drop reST/Markdown pages with fewer sentences (index and stub
            pages of the Python docs); a plain-text document of one sentence (a review)
            is kept (it gives MLM, AR and RTD text; NSP draws no pair from it).

    Returns:
        Documents (one per file), each a list of sentences.

    Raises:
        TextError: When the folder is missing or yields no sentences.
    """
    docs, total, files, stubs = [], 0, 0, 0
    for path in corpus_files(root):
        try:
            text = path.read_text(encoding='utf-8', errors='replace')
        except OSError as exc:
            log.warning('skipping unreadable corpus file %s: %s', path, exc)
            continue
        files += 1
        paragraphs = clean_rst(text) if _is_rst(path) else clean_plain(text)
        sentences = [s for para in paragraphs for s in split_sentences(para)]
        if not sentences or (_is_rst(path) and len(sentences) < min_rst_sentences):
            stubs += bool(sentences)
            continue
        docs.append(sentences)
        total += sum(len(s) for s in sentences)
        if max_chars and total >= max_chars:
            break
    if not docs:
        raise TextError(
            f'{root}: no prose sentences found in {files} file(s) ({stubs} reST/Markdown '
            f'page(s) of fewer than {min_rst_sentences} sentences dropped); reST/Markdown '
            'keeps unindented paragraphs of >= 40 characters, mostly letters, outside '
            'directives, lists and code; .txt keeps every paragraph (or line) with a letter')
    return docs


def split_documents(n_docs: int, *, val_fraction: float = 0.1,
                    seed: int = 0) -> tuple[list[int], list[int]]:
    """Split document indices into (train, val); held-out text is whole documents.

    Raises:
        TextError: With fewer than two documents.
    """
    if n_docs < 2:
        raise TextError(
            f'need at least 2 documents to hold some out, got {n_docs}: a document is one '
            'file (split one long file of short texts into several files)')
    order = list(range(n_docs))
    random.Random(seed).shuffle(order)
    n_val = min(n_docs - 1, max(1, round(n_docs * val_fraction)))
    return sorted(order[n_val:]), sorted(order[:n_val])


@dataclass(frozen=True)
class NSPPair:
    """A next-sentence-prediction example: sentence A, sentence B, and whether B follows A.

    Sentences are addressed as (document index, sentence index).
    """

    doc_a: int
    sent_a: int
    doc_b: int
    sent_b: int
    is_next: bool


def build_nsp_pairs(doc_lengths: Sequence[int], *, seed: int = 0,
                    p_next: float = 0.5) -> list[NSPPair]:
    """Build one NSP pair per sentence that has a successor, as in BERT.

    With probability `p_next` B is the sentence that truly follows A in its document;
    otherwise B is a random sentence of another document (so it never follows A).

    Args:
        doc_lengths: Number of sentences per document.
        seed: Seeds the choices.
        p_next: Probability of a consecutive pair.

    Returns:
        The pairs, in document order.

    Raises:
        TextError: With fewer than two non-empty documents (no negative exists).
    """
    nonempty = [d for d, n in enumerate(doc_lengths) if n > 0]
    if len(nonempty) < 2:
        raise TextError('NSP needs at least two non-empty documents')
    rng = random.Random(seed)
    pairs = []
    for doc, n in enumerate(doc_lengths):
        for sent in range(n - 1):
            if rng.random() < p_next:
                pairs.append(NSPPair(doc, sent, doc, sent + 1, True))
                continue
            other = doc
            while other == doc:
                other = nonempty[rng.randrange(len(nonempty))]
            pairs.append(NSPPair(doc, sent, other, rng.randrange(doc_lengths[other]), False))
    return pairs


@dataclass(frozen=True)
class Gloss:
    """One WordNet synset's gloss with its lexicographer-file label.

    Attributes:
        pos: Synset type as in the data line (n, v, a, s, r).
        offset: Byte offset of the synset (its id within the POS file).
        label: lex_filenum, an index into `LEXNAMES`.
        text: The gloss (definition and examples).
    """

    pos: str
    offset: int
    label: int
    text: str

    @property
    def label_name(self) -> str:
        """The lexicographer file name, e.g. 'noun.animal'."""
        return LEXNAMES[self.label]


def parse_wordnet_line(line: str) -> Gloss | None:
    """Parse one data-file line; None for license/header lines (two leading spaces).

    Raises:
        ValueError: When the line is not a WordNet data line.
    """
    if line.startswith('  ') or not line.strip():
        return None
    head, sep, gloss = line.partition('|')
    fields = head.split()
    if not sep or len(fields) < 4:
        raise ValueError('no gloss separator or too few fields')
    offset, lex_filenum, pos = int(fields[0]), int(fields[1]), fields[2]
    if not 0 <= lex_filenum < len(LEXNAMES):
        raise ValueError(f'lex_filenum {lex_filenum} out of range')
    if pos not in ('n', 'v', 'a', 's', 'r'):
        raise ValueError(f'unknown synset type {pos!r}')
    text = gloss.strip()
    if not text:
        raise ValueError('empty gloss')
    return Gloss(pos=pos, offset=offset, label=lex_filenum, text=text)


def read_wordnet_glosses(root: Path | str = WORDNET_DIR, *,
                         files: Sequence[str] = WORDNET_POS_FILES) -> list[Gloss]:
    """Read every synset's gloss and lexicographer file from WordNet data files.

    Malformed lines are dropped, counted and logged (never silently).

    Args:
        root: Folder with data.noun, data.verb, data.adj, data.adv.
        files: Data files to read (those missing are an error).

    Returns:
        The glosses, file by file in order.

    Raises:
        TextError: When a data file is missing or no gloss was read.
    """
    root = Path(root)
    glosses, dropped = [], 0
    for name in files:
        path = root / name
        if not path.exists():
            hint = ' (install Debian package wordnet-base: make eval-data)'
            raise TextError(f'{path}: WordNet data file not found{hint}')
        with path.open(encoding='utf-8', errors='replace') as f:
            for number, line in enumerate(f, 1):
                try:
                    gloss = parse_wordnet_line(line)
                except ValueError as exc:
                    dropped += 1
                    if dropped <= 5:
                        log.warning('%s:%d: dropped malformed line: %s', path, number, exc)
                    continue
                if gloss is not None:
                    glosses.append(gloss)
    if dropped:
        log.warning('WordNet: dropped %d malformed line(s)', dropped)
    if not glosses:
        raise TextError(f'{root}: no WordNet glosses read')
    return glosses


def split_glosses(glosses: Sequence[Gloss], *, fractions: tuple[float, float] = (0.8, 0.1),
                  seed: int = 0) -> tuple[list[int], list[int], list[int]]:
    """Split glosses by synset into (train, val, test) indices with a fixed seed.

    A synset appears once, keyed by (pos file, offset); shuffling whole synsets keeps
    every gloss on exactly one side.
    """
    keys = sorted({(g.pos if g.pos != 's' else 'a', g.offset) for g in glosses})
    rng = random.Random(seed)
    rng.shuffle(keys)
    n_train = int(len(keys) * fractions[0])
    n_val = int(len(keys) * fractions[1])
    side = {k: 0 if i < n_train else 1 if i < n_train + n_val else 2
            for i, k in enumerate(keys)}
    parts: tuple[list[int], list[int], list[int]] = ([], [], [])
    for i, g in enumerate(glosses):
        parts[side[(g.pos if g.pos != 's' else 'a', g.offset)]].append(i)
    return parts


# ----------------------------------------------------------------------------- man pages

@dataclass(frozen=True)
class ManPage:
    """One man page as a labelled text: its section from its prose alone.

    Attributes:
        name: File name, e.g. 'open.2' (not part of the text).
        label: Index of the section in the task's sections.
        text: The NAME line's description and the start of DESCRIPTION, roff removed;
            the NAME line's list of the page's names is left out.
    """

    name: str
    label: int
    text: str


_ROFF_FONT = re.compile(r'\\f(?:\[[^\]]*\]|\(..|.)')
_ROFF_ESCAPES = (('\\-', '-'), ('\\(em', '-'), ('\\(en', '-'), ('\\(aq', "'"),
                 ('\\(dq', '"'), ('\\(lq', '"'), ('\\(rq', '"'), ('\\e', '\\'),
                 ('\\&', ''), ('\\%', ''), ('\\ ', ' '), ('\\~', ' '), ('\\|', ''),
                 ('\\^', ''), ('\\c', ''))


def roff_text(line: str) -> str:
    """Plain text of one roff line (a font macro's arguments, or a text line)."""
    if line.startswith(('.', "'")):
        macro, _, rest = line[1:].partition(' ')
        if macro not in ('B', 'I', 'BR', 'RB', 'IR', 'RI', 'BI', 'IB', 'SM', 'SB'):
            return ''
        parts = re.findall(r'"([^"]*)"|(\S+)', rest)
        words = [a or b for a, b in parts]
        # Alternating-font macros join their arguments without spaces.
        line = ''.join(words) if len(macro) == 2 else ' '.join(words)
    line = _ROFF_FONT.sub('', line)
    for escape, plain in _ROFF_ESCAPES:
        line = line.replace(escape, plain)
    return line.strip()


def parse_man_page(source: str, *, max_words: int = 60) -> str:
    """The NAME description and the first DESCRIPTION paragraph of a page, as prose.

    Returns:
        The text (empty when the page has no NAME line with a description).
    """
    section, name_lines, desc_words = '', [], []
    for raw in source.splitlines():
        if raw.startswith('.\\"') or raw.startswith("'\\\""):
            continue
        if raw.startswith(('.SH', '.sh')):
            section = raw[3:].strip().strip('"').upper()
            if desc_words:
                break
            continue
        if section == 'NAME':
            name_lines.append(roff_text(raw))
        elif section == 'DESCRIPTION':
            if raw.startswith(('.PP', '.LP', '.P ', '.TP', '.IP', '.SS', '.RS', '.nf',
                               '.EX')) and desc_words:
                break
            desc_words.extend(roff_text(raw).split())
            if len(desc_words) >= max_words:
                break
    name = ' '.join(w for w in name_lines if w)
    if ' - ' not in name:
        return ''
    description = name.split(' - ', 1)[1].strip()
    text = description[:1].upper() + description[1:] + '.'
    if desc_words:
        text += ' ' + ' '.join(desc_words[:max_words])
    return re.sub(r'\s+', ' ', text).strip()


def read_man_pages(root: Path | str = MAN_ROOT, *, sections: Sequence[str] = MAN_SECTIONS,
                   packages: Sequence[str] | None = MAN_PACKAGES,
                   dpkg_info: Path | str = DPKG_INFO) -> list[ManPage]:
    """Man pages of `sections` as labelled texts, sorted by name.

    Symbolic links (aliases of another page), `.so` redirections and pages without a
    NAME description are skipped.

    Args:
        root: The man folder (man2/, man3/, ... below it).
        sections: Section of each label index.
        packages: Only the pages these Debian packages installed (their dpkg file lists);
            None: every page under `root`.
        dpkg_info: Where the dpkg file lists are.

    Raises:
        TextError: When a package is not installed or no page was read.
    """
    import gzip
    root = Path(root)
    allowed: set[str] | None = None
    if packages is not None:
        allowed = set()
        for package in packages:
            listing = Path(dpkg_info) / f'{package}.list'
            if not listing.exists():
                raise TextError(f'{listing}: Debian package {package} is not installed '
                                f'(apt-get install {" ".join(packages)}; make eval-data)')
            allowed.update(listing.read_text().split())
    pages = []
    for label, section in enumerate(sections):
        for path in sorted((root / f'man{section}').glob(f'*.{section}*')):
            if path.is_symlink() or (allowed is not None and str(path) not in allowed):
                continue
            try:
                raw = (gzip.decompress(path.read_bytes()) if path.suffix == '.gz'
                       else path.read_bytes()).decode('utf-8', errors='replace')
            except (OSError, EOFError, gzip.BadGzipFile) as exc:
                log.warning('skipping unreadable man page %s: %s', path, exc)
                continue
            if raw.lstrip().startswith('.so '):
                continue
            text = parse_man_page(raw)
            if text:
                pages.append(ManPage(name=path.name.removesuffix('.gz'), label=label,
                                     text=text))
    if not pages:
        raise TextError(f'{root}: no man pages of sections {", ".join(sections)} read')
    return pages
