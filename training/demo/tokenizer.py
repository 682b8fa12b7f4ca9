"""The demo model's tokenizer: a small byte-level BPE in Hugging Face ``tokenizers`` format.

Trained on the procedural world's caption language plus a list of common English
words, so the world's words are single tokens and any other text (a user's
query, a new label such as "Miso" or "striped") still tokenizes into sub-words
instead of collapsing into an unknown token: text-only fine-tuning can then
teach words the model has never read.

Ids: ``<pad>`` is 0, ``<start>`` 1, and ``<end>`` is the highest id. open_clip's
text tower pools at the position of the highest id in each row (its
``argmax`` pooling), so ``<end>`` must be the top id. The saved tokenizer.json
carries its own padding and truncation to the context length, with ``<end>``
kept when a long text is truncated.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
from tokenizers import (
    Tokenizer,
    decoders,
    models,
    normalizers,
    pre_tokenizers,
    processors,
    trainers,
)

from . import captions, world

PAD, START, END = "<pad>", "<start>", "<end>"

# Frequent English words and words people type when searching photos: enough for
# arbitrary queries to split into sensible pieces.
COMMON_ENGLISH = """
the of and to a in is it you that he was for on are with as i his they be at one have this from or
had by hot word but what some we can out other were all there when up use your how said an each she
which do their time if will way about many then them write would like so these her long make thing see
him two has look more day could go come did number sound no most people my over know water than call
first who may down side been now find any new work part take get place made live where after back
little only round man year came show every good me give our under name very through just form sentence
great think say help low line differ turn cause much mean before move right boy old too same tell does
set three want air well also play small end put home read hand port large spell add even land here must
big high such follow act why ask men change went light kind off need house picture try us again animal
point mother world near build self earth father head stand own page should country found answer school
grow study still learn plant cover food sun four between state keep eye never last let thought city
tree cross farm hard start might story saw far sea draw left late run while press close night real life
few north open seem together next white children begin got walk example ease paper group always music
those both mark often letter until mile river car feet care second book carry took science eat room
friend began idea fish mountain stop once base hear horse cut sure watch colour color face wood main
enough plain girl usual young ready above ever red list though feel talk bird soon body dog family
direct pose leave song measure door product black short numeral class wind question happen complete ship
area half rock order fire south problem piece told knew pass since top whole king space heard best hour
better true during hundred five remember step early hold west ground interest reach fast verb sing listen
six table travel less morning ten simple several vowel toward war lay against pattern slow center love
person money serve appear road map rain rule govern pull cold notice voice unit power town fine certain
fly fall lead cry dark machine note wait plan figure star box noun field rest correct able pound done
beauty drive stood contain front teach week final gave green oh quick develop ocean warm free minute
strong special mind behind clear tail produce fact street inch multiply nothing course stay wheel full
force blue object decide surface deep moon island foot system busy test record boat common gold possible
plane stead dry wonder laugh thousand ago ran check game shape equate miss brought heat snow tire bring
yes distant fill east paint language among cat kitten puppy baby kid kids beach sunset sunrise dusk dawn
slide park garden flower flowers sky cloud clouds lake forest snowy winter summer spring autumn birthday
cake party wedding portrait selfie friends receipt receipts whiteboard screenshot document documents
bicycle bike bus train street building bridge church castle museum kitchen bedroom sofa chair desk
laptop phone computer screen window glass bottle cup coffee tea pizza bread fruit apple banana orange
grass leaf leaves mountains hill hills valley desert road highway city night lights christmas halloween
holiday vacation hiking camping tent fire campfire boat sailing swimming pool horse cow sheep bird birds
duck butterfly insect spider snake fish aquarium zoo elephant lion tiger bear monkey giraffe zebra
football soccer basketball tennis ball player team stadium concert stage guitar piano drum painting
drawing sketch statue sculpture toy toys teddy doll lego robot rocket airplane airport car cars truck
taxi motorcycle helmet shoe shoes hat shirt dress jacket coat umbrella bag backpack glasses sunglasses
watch ring necklace mirror smile smiling laughing crying sleeping running jumping walking sitting
standing dancing eating drinking reading writing cooking playing riding holding wearing looking
happy sad funny cute beautiful pretty ugly bright colorful colourful striped dotted spotted checkered
wooden metal plastic stone brick old new empty crowded blurry sharp close closeup macro wide panorama
inside outside indoor outdoor background foreground left right middle centre corner edge top bottom
""".split()  # noqa: SIM905 (a word list reads better as text)


def _world_corpus(n_scenes: int, seed: int) -> Iterator[str]:
    rng = np.random.default_rng([seed, 7])
    for s in world.scenes("train", n_scenes, seed=seed):
        yield captions.caption_detailed(s, rng).text
        for _ in range(3):
            yield captions.sample_caption(s, rng).text
    # Every word the world can say, and the query phrasings, at least a few times.
    for q in captions.attribute_queries() + captions.composition_queries():
        yield q.text


def build_tokenizer(
    context_length: int = 32, vocab_size: int = 2048, *, n_scenes: int = 3000, seed: int = 0
) -> Tokenizer:
    """Train the demo BPE. Deterministic for fixed arguments."""
    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()])
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size - 1,  # <end> is appended afterwards as the top id
        min_frequency=2,
        special_tokens=[PAD, START],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )

    def corpus() -> Iterator[str]:
        yield from _world_corpus(n_scenes, seed)
        for _ in range(3):  # min_frequency 2: each common word must be seen more than once
            yield " ".join(COMMON_ENGLISH)

    tok.train_from_iterator(corpus(), trainer=trainer)
    tok.add_special_tokens([END])
    end_id = tok.token_to_id(END)
    if end_id != tok.get_vocab_size() - 1:  # the argmax pooling relies on it
        raise RuntimeError(f"{END} got id {end_id}, not the top id {tok.get_vocab_size() - 1}")
    tok.post_processor = processors.TemplateProcessing(
        single=f"{START} $A {END}",
        special_tokens=[(START, tok.token_to_id(START)), (END, end_id)],
    )
    tok.enable_truncation(max_length=context_length)
    tok.enable_padding(pad_id=tok.token_to_id(PAD), pad_token=PAD, length=context_length)
    return tok


def save_tokenizer(tok: Tokenizer, path: Path) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    tok.save(str(path))


def encode(tok: Tokenizer, texts: list[str]) -> np.ndarray:
    """Token ids int64 [N, context_length] straight from a ``tokenizers`` object.

    Training goes through ``engine.models.tokenizer`` (what the app runs) when it is
    available; this is the reference it must agree with.
    """
    return np.array([e.ids for e in tok.encode_batch(texts)], dtype=np.int64)
