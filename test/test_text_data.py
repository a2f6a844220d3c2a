"""Text data: reST cleaning, sentence splitting, NSP pairs, WordNet reader, tokenizer."""
from __future__ import annotations

from collections import Counter

import pytest

from ssl_robot.text import TextError
from ssl_robot.text.data import (
    build_nsp_pairs,
    clean_rst,
    LEXNAMES,
    load_corpus,
    parse_wordnet_line,
    PYTHON_DOCS,
    read_wordnet_glosses,
    split_documents,
    split_glosses,
    split_sentences,
    WORDNET_DIR,
)
from ssl_robot.text.tokenizer import SPECIAL_TOKENS, TextTokenizer, train_tokenizer


def test_clean_rst_keeps_prose_and_strips_markup():
    text = '\n'.join([
        'Title of the page', '=================', '',
        '.. module:: foo', '   :synopsis: nothing', '',
        'The :func:`len` function returns the ``size`` of *any* container object given.',
        'It wraps `lines <https://x.org>`_ nicely::', '',
        '   >>> len([1, 2])', '   2', '',
        'Short.', ''])
    assert clean_rst(text) == [
        'The len function returns the size of any container object given. '
        'It wraps lines nicely.']


@pytest.mark.parametrize('paragraph, expected', [
    ('One sentence here. Another one! A third? Yes.',
     ['One sentence here.', 'Another one!', 'A third?', 'Yes.']),
    ('Use a tuple, e.g. Point(1, 2). Done.', ['Use a tuple, e.g. Point(1, 2).', 'Done.']),
    ('By R. Hettinger. Then x equals x.', ['By R. Hettinger.', 'Then x equals x.']),
    ('version 3.11 is fine. ok', ['version 3.11 is fine. ok']),
])
def test_split_sentences(paragraph, expected):
    assert split_sentences(paragraph) == expected


def test_nsp_pairs_are_balanced_and_truly_consecutive_or_not():
    lengths = [30, 1, 50, 0, 40, 25] * 20
    pairs = build_nsp_pairs(lengths, seed=3)
    assert len(pairs) == sum(max(n - 1, 0) for n in lengths)  # one pair per sentence pair
    n_next = sum(p.is_next for p in pairs)
    # 50 % within 4 standard deviations of a binomial.
    sd = (len(pairs) * 0.25) ** 0.5
    assert abs(n_next - len(pairs) / 2) < 4 * sd
    for p in pairs:
        assert 0 <= p.sent_a < lengths[p.doc_a] - 1 and 0 <= p.sent_b < lengths[p.doc_b]
        if p.is_next:
            assert (p.doc_b, p.sent_b) == (p.doc_a, p.sent_a + 1)
        else:
            assert p.doc_b != p.doc_a  # never the same document, so never consecutive
    assert build_nsp_pairs(lengths, seed=3) == pairs  # seeded


def test_nsp_needs_two_documents():
    with pytest.raises(TextError):
        build_nsp_pairs([10, 0])


def test_split_documents_disjoint_and_seeded():
    train, val = split_documents(50, val_fraction=0.2, seed=1)
    assert len(val) == 10 and not set(train) & set(val) and len(train) + len(val) == 50
    assert split_documents(50, val_fraction=0.2, seed=1) == (train, val)


# WordNet data lines end in two spaces (kept: the reader must cope with them).
WORDNET_SAMPLE = ''.join(line + '  \n' for line in [
    '  1 This software and database is being provided to you, the LICENSEE, by',
    '  2 Princeton University under the following license.',
    '00001740 03 n 01 entity 0 003 ~ 00001930 n 0000 | that which is perceived or known',
    '00015388 05 n 01 animal 0 002 @ 00004475 n 0000 | a living organism; "animals move"',
    'this line is broken',
    '00002098 00 a 01 unable 0 001 ! 00001740 a 0101 | not able',
    '00002312 44 s 01 abaxial 0 000 | facing away from the axis',
])


def test_wordnet_reader_on_a_hand_written_file(tmp_path, caplog):
    (tmp_path / 'data.noun').write_text(WORDNET_SAMPLE)
    glosses = read_wordnet_glosses(tmp_path, files=['data.noun'])
    assert [(g.offset, g.pos, g.label_name, g.text) for g in glosses] == [
        (1740, 'n', 'noun.Tops', 'that which is perceived or known'),
        (15388, 'n', 'noun.animal', 'a living organism; "animals move"'),
        (2098, 'a', 'adj.all', 'not able'),
        (2312, 's', 'adj.ppl', 'facing away from the axis'),
    ]
    assert 'dropped 1 malformed' in caplog.text  # counted and logged, not silent


def test_wordnet_lexnames_and_bad_lines():
    assert len(LEXNAMES) == 45 and LEXNAMES[5] == 'noun.animal' and LEXNAMES[44] == 'adj.ppl'
    assert parse_wordnet_line('  12 license text') is None
    with pytest.raises(ValueError):
        parse_wordnet_line('00001740 45 n 01 x 0 000 | out of range')


def test_wordnet_missing_is_a_clear_error(tmp_path):
    with pytest.raises(TextError, match='wordnet-base'):
        read_wordnet_glosses(tmp_path)


def test_split_glosses_by_synset(tmp_path):
    lines = [f'{i:08d} {i % 45:02d} n 01 w 0 000 | gloss {i}' for i in range(1000)]
    (tmp_path / 'data.noun').write_text('\n'.join(lines) + '\n')
    glosses = read_wordnet_glosses(tmp_path, files=['data.noun'])
    train, val, test = split_glosses(glosses, seed=0)
    assert (len(train), len(val), len(test)) == (800, 100, 100)
    assert not (set(train) & set(val)) and not (set(train) & set(test))
    assert split_glosses(glosses, seed=0) == (train, val, test)
    assert split_glosses(glosses, seed=1) != (train, val, test)


@pytest.mark.skipif(not (WORDNET_DIR / 'data.noun').exists(),
                    reason='WordNet data missing (Debian wordnet-base; make eval-data)')
def test_real_wordnet_has_45_classes():
    glosses = read_wordnet_glosses()
    assert len(glosses) > 100_000
    assert len(Counter(g.label for g in glosses)) == 45


@pytest.mark.skipif(not PYTHON_DOCS.exists(),
                    reason='Python docs missing (Debian python3.11-doc; make eval-data)')
def test_real_corpus_gives_prose():
    docs = load_corpus(max_chars=100_000)
    sentences = [s for d in docs for s in d]
    assert len(sentences) > 500
    assert sum(s[0].isupper() for s in sentences) > 0.8 * len(sentences)


def test_tokenizer_round_trip_and_save_load(tmp_path):
    text = ['The robot moves the box near the lamp.', 'Ünïcode and symbols: {x: 1} -> 2!'] * 50
    tok = train_tokenizer(text, vocab_size=300)
    assert [tok.tokenizer.id_to_token(i) for i in range(5)] == list(SPECIAL_TOKENS)
    sample = 'An unseen sentence, with Ünïcode £ and   spaces.\nNew line.'
    ids = tok.encode(sample)
    assert all(i >= tok.num_special for i in ids)
    assert tok.decode(ids) == sample
    loaded = TextTokenizer.load(tok.save(tmp_path / 'tok.json'))
    assert loaded.encode(sample) == ids and loaded.vocab_size == tok.vocab_size
    with pytest.raises(TextError):
        TextTokenizer.load(tmp_path / 'missing.json')
