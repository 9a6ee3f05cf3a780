"""`kws synth`: a synthetic Speech Commands dataset from text, offline, with the TTS engines Debian ships.

The output is exactly the official Speech Commands v0.02 tarball layout (`<word>/<speaker>_nohash_0.wav`,
`_background_noise_/`, `validation_list.txt`, `testing_list.txt`) plus `synth.json`, so every loader that
reads the real dataset reads this one.

A *speaker* is an engine + voice + prosody (speaking rate, pitch shift). Splits are made by *voice*, not by
speaker: speakers that share a voice and differ only in rate/pitch sound alike, and holding out only some of
them let every model score >= 0.96 on test and ranked models wrongly. The unit is in fact a voice group
(`voice_group`): an espeak-ng variant in all its accents, and flite/festival voices recorded from one person.

Negatives. Models trained on the plain 35 words accepted a click, a camera shutter or a clatter as a keyword:
`_silence_` had been cropped only from stationary noise, and `_unknown_` held only the 25 other words. So
`_background_noise_/` also gets non-stationary recordings (`transients`, `tones_and_chirps`, `music`), dense
enough in events that almost every 1 s `_silence_` crop holds one, and every speaker also says a few of
EXTRA_WORDS (`extra_words_per_speaker`), common words and near misses of the sc12 keywords (yet, note, cup, town,
lift, light, own, often, stock, goal, ...): sc12 and `custom --words` sample `_unknown_` from them too, sc35
drops them. They come with the default words only; with your own --words, pass --extra-words.

Determinism: every random choice is drawn from a generator seeded by (seed, speaker_id, word) or by
(seed, a fixed name), never by worker order, so the same seed and the same installed engines give
byte-identical files whatever `jobs` is.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import re
import shutil
import subprocess
import tempfile
import time
import warnings
from collections import Counter
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from xml.sax.saxutils import escape

import numpy as np

from kwslib.audio import read, resample, to_mono, wav_bytes
from kwslib.config import SAMPLE_RATE, SynthConfig
from kwslib.data.speech_commands import TESTING_LIST, VALIDATION_LIST
from kwslib.labels import BACKGROUND_NOISE_DIR, SC35_WORDS

SPLITS = ("train", "validation", "test")
ENGINES = ("espeak-ng", "flite", "festival")
# espeak-ng has hundreds of voices (accent x variant), flite and festival a handful each: most speakers come
# from espeak-ng so that most speakers are distinct voices, the rest add the other engines' very different timbres.
ENGINE_SHARES = {"espeak-ng": 0.70, "flite": 0.15, "festival": 0.15}
ENGINE_PACKAGES = {"espeak-ng": "espeak-ng", "flite": "flite", "festival": "festival"}
INSTALL_ALL = "sudo apt-get install espeak-ng flite festival"

ESPEAK_ACCENTS = (
    "en-gb", "en-us", "en-gb-scotland", "en-gb-x-gbclan", "en-gb-x-rp", "en-gb-x-gbcwmd", "en-029", "en-us-nyc",
)  # fmt: skip
# Variants that do not sound like a person saying the word. Checked by synthesizing the 35 Speech Commands
# words with en-us+<variant> and decoding them with pocketsphinx restricted to those 35 words (plain en-us: 57 %
# correct, most variants 30-90 %), and by reading the variant files.
ESPEAK_DROPPED_VARIANTS = {
    "whisper": "unvoiced (breath only), nothing like the speech it is tested on",
    "whisperf": "unvoiced (breath only), nothing like the speech it is tested on",
    "Alicia": "heavy echo and shifted formants; 17 % recognised",
    "zac": "every formant shifted +45 %; 17 % recognised",
    "kaukovalta": "F1 at 40 %; 6 % recognised",
    "Lee": "F3 at 9 %; 11 % recognised",
    "gustave": "F3 at 59 %; 14 % recognised",
    "marcelo": "F3 at 59 %; 14 % recognised",
    "shelby": "F6-F8 at 10 %; 14 % recognised",
    "boris": "F0 band at 47 % and F3 at 57 %; 17 % recognised",
    "Jacky": "F3 at 15 %, F4 at 20 %",
    "AnxiousAndy": "F3 and F4 removed",
}
ESPEAK_WPM = 175  # espeak-ng's default words per minute, i.e. rate 1.0
ESPEAK_WPM_RANGE = (80, 450)  # what espeak-ng accepts for -s
ESPEAK_BATCH_PAUSE_MS = 1000  # between words spoken in one espeak-ng process
ESPEAK_BATCH_GAP_SECONDS = 0.4  # silence that separates two words; no word has a pause this long inside
FLITE_VOICES = ("kal16", "awb", "rms", "slt")
# festival voice -> Debian package that installs it
FESTIVAL_VOICES = {
    "kal_diphone": "festvox-kallpc16k",
    "ked_diphone": "festvox-kdlpc16k",
    "cmu_us_slt_arctic_hts": "festvox-us-slt-hts",
}

# flite and festival voices built from the same recorded person: kal16 and kal_diphone share the KAL diphone
# recordings, slt and cmu_us_slt_arctic_hts the CMU ARCTIC SLT speaker.
SHARED_SOURCES = {
    ("flite", "kal16"): "kal",
    ("festival", "kal_diphone"): "kal",
    ("flite", "slt"): "slt",
    ("festival", "cmu_us_slt_arctic_hts"): "slt",
}

# Prosody of a speaker: final speaking-rate factor and pitch shift in semitones.
RATE_RANGE = (0.85, 1.20)
PITCH_RANGE = (-3.0, 3.0)

FRAME_SECONDS = 0.010
TRIM_TOP_DB = 40.0  # frames this far below the loudest frame are leading/trailing silence
SILENT_DBFS = -60.0  # a clip whose loudest frame is quieter than this is dropped as silent
EDGE_SECONDS = 0.010  # kept around the trimmed speech so onsets and decays are not cut
MAX_SPEECH_FRACTION = 0.9  # longer speech is time-compressed to this share of the clip
MAX_COMPRESSION = 1.5  # beyond this the phase vocoder smears the word: drop it instead
JITTER_SECONDS = 0.05  # random shift of the word around the clip centre
TARGET_RMS_DBFS = -20.0
# 0.5 dB under the -1 dBFS promise, leaving room for the noise floor and 16-bit rounding.
PEAK_CEILING_DBFS = -1.5
PEAK_LIMIT_DBFS = -1.0
NOISE_FLOOR_DBFS = -70.0  # so padding is not digital zero, which no microphone produces

MIN_NOISE_SECONDS = 30.0
MAINS_HZ = 50.0
BABBLE_STREAMS = 8
# Non-keyword words every speaker says a few of (`extra_words_per_speaker`), for a more varied `_unknown_`:
# near misses of the sc12 keywords first (a model must hear "yet" and "cup" to learn they are not "yes" and
# "up"), then common words of voice commands. None is a Speech Commands word or a homophone of one (know/no,
# write/right, won/one, ...): the same sound labelled a keyword and `_unknown_` would be label noise. Checked
# with `espeak-ng -x`: no word here gets the phonemes of a Speech Commands word.
EXTRA_WORDS = (
    "yet", "guess", "yeah", "less",  # yes
    "note", "nose", "now", "snow", "new",  # no
    "app", "cup", "cut", "us",  # up
    "town", "dawn", "round", "done",  # down
    "lift", "laugh", "loft",  # left
    "light", "rice", "night", "white",  # right
    "own", "an",  # on
    "of", "often", "cough", "soft",  # off
    "stock", "stuff", "shop", "top", "step",  # stop
    "goal", "though", "cold", "ago",  # go
    "yellow", "hello", "okay", "never", "maybe", "water", "better", "open", "close", "music", "phone", "call",
    "play", "pause", "next", "back", "start", "again", "wait", "please", "help",
)  # fmt: skip
# Homophones of Speech Commands words: never spoken as extra words nor heard in babble.
HOMOPHONES = frozenset({"to", "too", "for", "fore", "know", "won", "ate", "write", "rite", "wright"})

# Neutral sentences for babble. None contains a Speech Commands word, a homophone of one (HOMOPHONES) or an
# extra word: babble is cropped into `_silence_` examples, so a word heard in it must not be a class of its own.
BABBLE_SENTENCES = (
    "The morning train arrived at the station a little early.",
    "She painted the small kitchen a pale green.",
    "Many people enjoy walking along the river in summer.",
    "We watched the clouds drift slowly across the valley.",
    "The baker made fresh bread with honey and oats.",
    "Our neighbour keeps a garden with roses and mint.",
    "The children built a sand castle by the sea.",
    "A quiet breeze moved through the tall grass.",
    "The teacher explained the lesson with patience.",
    "He carried the heavy boxes into the hall.",
    "They shared stories about travels in distant lands.",
    "The soup needs more salt and pepper.",
    "Bright lanterns glowed along the narrow street.",
    "The museum displays paintings from several centuries.",
    "Rain fell softly against the window all evening.",
    "The farmer checked the fences after the storm.",
)
BABBLE_AVOID = frozenset(SC35_WORDS) | HOMOPHONES | frozenset(EXTRA_WORDS)

SYNTH_JSON = "synth.json"
_NOT_OURS = "does not look like a `kws synth` dataset (no synth.json)"


class MissingEngineWarning(UserWarning):
    """A TTS engine or voice is not installed and is skipped."""


# ---------------------------------------------------------------------------------------------------------------
# Engines and voices


def _run(cmd: list[str], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, check=False, **kwargs)


def _espeak_voices() -> tuple[list[str], str | None]:
    """espeak-ng voices (`accent` or `accent+variant`), or the reason there are none."""
    if shutil.which("espeak-ng") is None:
        return [], "espeak-ng is not installed"
    langs = _run(["espeak-ng", "--voices=en"], text=True).stdout
    installed = {line.split()[1] for line in langs.splitlines()[1:] if len(line.split()) > 1}
    accents = [a for a in ESPEAK_ACCENTS if a in installed or (a == "en-gb" and "en" in installed)]
    listing = _run(["espeak-ng", "--voices=variant"], text=True).stdout
    # The file column is `!v/<name>` and <name> may hold a space ("Mr serious"), so take the path, not a field.
    variants = sorted({m.group(1).strip() for m in re.finditer(r"!v/(.+?)\s*(?:\(|$)", listing, re.M)})
    variants = [v for v in variants if v not in ESPEAK_DROPPED_VARIANTS]
    if not accents:
        return [], "espeak-ng has no English voices"
    # "" is the accent's own default voice.
    return [a + (f"+{v}" if v else "") for a in accents for v in ["", *variants]], None


def _flite_voices() -> tuple[list[str], str | None]:
    if shutil.which("flite") is None:
        return [], "flite is not installed"
    listing = _run(["flite", "-lv"], text=True).stdout
    names = set(listing.replace("Voices available:", "").split())
    voices = [v for v in FLITE_VOICES if v in names]
    return voices, None if voices else f"flite has none of the voices {', '.join(FLITE_VOICES)}"


def _festival_voices() -> tuple[list[str], str | None]:
    if shutil.which("festival") is None:
        return [], "festival is not installed"
    listing = _run(["festival", "-b", "(print (voice.list))"], text=True, timeout=60).stdout
    names = set(listing.replace("(", " ").replace(")", " ").split())
    voices = [v for v in FESTIVAL_VOICES if v in names]
    missing = [v for v in FESTIVAL_VOICES if v not in names]
    if missing and voices:
        packages = " ".join(FESTIVAL_VOICES[v] for v in missing)
        warnings.warn(
            f"festival voices {', '.join(missing)} are not installed and are skipped; "
            f"install them: sudo apt-get install {packages}",
            MissingEngineWarning,
            stacklevel=3,
        )
    if not voices:
        return [], f"festival has none of the voices {', '.join(FESTIVAL_VOICES)}"
    return voices, None


_VOICE_FINDERS = {"espeak-ng": _espeak_voices, "flite": _flite_voices, "festival": _festival_voices}


def _install_hint(engine: str, reason: str) -> str:
    """The Debian packages that fix `reason` for `engine`."""
    if engine == "festival" and "voices" in reason:
        return " ".join(FESTIVAL_VOICES.values())
    return ENGINE_PACKAGES[engine]


def engine_voices(engines: tuple[str, ...] | list[str] = ENGINES) -> tuple[dict[str, list[str]], dict[str, str]]:
    """Usable voices of each engine, and the engines skipped with why (naming the Debian package to install)."""
    usable, skipped = {}, {}
    for engine in engines:
        voices, reason = _VOICE_FINDERS[engine]()
        if voices:
            usable[engine] = voices
        else:
            skipped[engine] = f"{reason}; install it: sudo apt-get install {_install_hint(engine, reason)}"
    return usable, skipped


def available_engines() -> dict[str, str | None]:
    """Each engine -> None if it can be used, else the Debian package(s) to install."""
    usable, skipped = engine_voices()
    return {
        engine: None if engine in usable else _install_hint(engine, skipped[engine].split(";")[0]) for engine in ENGINES
    }


def _engine_version(engine: str) -> str:
    out = _run([engine, "--version"], text=True)
    lines = [line.strip() for line in (out.stdout or out.stderr).splitlines() if re.search(r"\d+\.\d+", line)]
    return lines[0] if lines else "unknown"


# ---------------------------------------------------------------------------------------------------------------
# Speakers and splits


@dataclass(frozen=True)
class Speaker:
    """One synthetic speaker: an engine voice with a speaking rate and a pitch shift."""

    engine: str
    voice: str
    rate: float  # final speaking-rate factor (1.0 = the engine's normal speed)
    pitch: float  # semitones, applied by resampling (shifts pitch and formants like a differently sized speaker)
    split: str = "train"

    @property
    def id(self) -> str:
        return speaker_id(self.engine, self.voice, self.rate, self.pitch)

    @property
    def native_rate(self) -> float:
        """The rate asked of the engine: the pitch shift by resampling also speeds speech up by 2**(pitch/12)."""
        return self.rate / 2 ** (self.pitch / 12)

    def to_dict(self) -> dict:
        return {
            "engine": self.engine,
            "voice": self.voice,
            "voice_group": voice_group(self.engine, self.voice),
            "rate": self.rate,
            "pitch": self.pitch,
            "split": self.split,
        }


def speaker_id(engine: str, voice: str, rate: float, pitch: float) -> str:
    """The 8-hex-digit id of a speaker, as in Speech Commands file names."""
    return hashlib.sha1(f"{engine}|{voice}|{rate:.3f}|{pitch:.2f}".encode()).hexdigest()[:8]


def _rng(seed: int, *keys) -> np.random.Generator:
    """A generator that depends only on the seed and `keys`, never on call order or worker."""
    digest = hashlib.sha256("|".join(str(k) for k in (seed, *keys)).encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:16], "little"))


def _apportion(total: int, shares: dict[str, float]) -> dict[str, int]:
    """Split `total` in proportion to `shares` (largest remainder; ties in `shares` order)."""
    norm = sum(shares.values())
    exact = {k: total * v / norm for k, v in shares.items()}
    counts = {k: math.floor(x) for k, x in exact.items()}
    order = sorted(shares, key=lambda k: (-(exact[k] - counts[k]), list(shares).index(k)))
    for k in order[: total - sum(counts.values())]:
        counts[k] += 1
    return counts


def _voice_order(engine: str, voices: list[str], seed: int) -> list[str]:
    """Voices in the order speakers take them: seeded, and for espeak-ng cycling accents so they stay balanced."""
    rng = _rng(seed, "voices", engine)
    if engine != "espeak-ng":
        return [voices[i] for i in rng.permutation(len(voices))]
    accents = list(dict.fromkeys(v.split("+")[0] for v in voices))
    variants = list(dict.fromkeys(v.split("+")[1] if "+" in v else "" for v in voices))
    accents = [accents[i] for i in rng.permutation(len(accents))]
    variants = [variants[i] for i in rng.permutation(len(variants))]
    n_acc, n_var = len(accents), len(variants)
    # Speaker i gets variant i mod n_var and an accent that moves on by one each time the variants wrap around,
    # so the first n_acc * n_var speakers are all distinct (accent, variant) pairs with balanced accents.
    order = []
    for i in range(n_acc * n_var):
        accent, variant = accents[(i + i // n_var) % n_acc], variants[i % n_var]
        order.append(accent + (f"+{variant}" if variant else ""))
    return [v for v in order if v in set(voices)]


def plan_speakers(n: int, voices: dict[str, list[str]], seed: int) -> list[Speaker]:
    """`n` distinct speakers over the engines in `voices` (shares of ENGINE_SHARES, renormalised), split-less."""
    counts = _apportion(n, {e: ENGINE_SHARES[e] for e in ENGINES if e in voices})
    speakers: list[Speaker] = []
    seen: set[str] = set()
    for engine, count in counts.items():
        order = _voice_order(engine, voices[engine], seed)
        per_voice = Counter(order[i % len(order)] for i in range(count))
        for voice, m in sorted(per_voice.items(), key=lambda kv: order.index(kv[0])):
            rng = _rng(seed, "prosody", engine, voice)
            # Latin hypercube: the m prosodies of one voice each take their own rate band and pitch band, so
            # speakers sharing a voice are spread over the range instead of clumping.
            rate_bins, pitch_bins = rng.permutation(m), rng.permutation(m)
            for j in range(m):
                for _ in range(100):
                    r = RATE_RANGE[0] + (rate_bins[j] + rng.random()) / m * (RATE_RANGE[1] - RATE_RANGE[0])
                    p = PITCH_RANGE[0] + (pitch_bins[j] + rng.random()) / m * (PITCH_RANGE[1] - PITCH_RANGE[0])
                    spk = Speaker(engine, voice, round(float(r), 3), round(float(p), 2))
                    if spk.id not in seen:
                        break
                else:  # pragma: no cover - 100 sha1 collisions in a row
                    raise RuntimeError(f"could not draw a new speaker id for {engine} {voice}")
                seen.add(spk.id)
                speakers.append(spk)
    return speakers


def voice_group(engine: str, voice: str) -> str:
    """The unit of splitting: voices of one group sound like one person, so they never straddle two splits.

    An espeak-ng voice's timbre is its variant (the accent only changes pronunciation), and two flite/festival
    voices are built from the same recorded person (SHARED_SOURCES).
    """
    if (engine, voice) in SHARED_SOURCES:
        return f"source:{SHARED_SOURCES[engine, voice]}"
    if engine == "espeak-ng":
        return f"espeak-ng:{voice.split('+')[1] if '+' in voice else 'default'}"
    return f"{engine}:{voice}"


def _held_out(n_groups: int, fraction: float) -> int:
    n = math.floor(n_groups * fraction + 0.5)
    # An engine with >= 3 voices always shows up in validation and test, or a model could be tested on
    # espeak-ng alone and its behaviour on the other engines' voices would go unmeasured.
    return max(n, 1) if fraction > 0 and n_groups >= 3 else n


def assign_splits(
    speakers: list[Speaker], validation_fraction: float, test_fraction: float, seed: int
) -> list[Speaker]:
    """Give every speaker a split by voice group, stratified per engine: a voice's speakers all share one split."""
    groups_of = {
        e: list(dict.fromkeys(voice_group(s.engine, s.voice) for s in speakers if s.engine == e))
        for e in dict.fromkeys(s.engine for s in speakers)
    }
    split_of: dict[str, str] = {}
    # Engines with the fewest groups first: groups shared with a later engine then count towards its quota.
    for engine in sorted(groups_of, key=lambda e: (len(groups_of[e]), ENGINES.index(e))):
        groups = [groups_of[engine][i] for i in _rng(seed, "split", engine).permutation(len(groups_of[engine]))]
        n_test, n_val = _held_out(len(groups), test_fraction), _held_out(len(groups), validation_fraction)
        while n_test + n_val > len(groups) - 1 and n_test + n_val > 0:  # keep a training voice
            if n_val >= n_test:
                n_val -= 1
            else:
                n_test -= 1
        tally = Counter(split_of[g] for g in groups if g in split_of)
        for g in groups:
            if g not in split_of:
                split_of[g] = (
                    "test" if tally["test"] < n_test else "validation" if tally["validation"] < n_val else "train"
                )
                tally[split_of[g]] += 1
    # Few speakers can leave a held-out split empty (every engine below 3 voices): move a training group there.
    for split, fraction in (("test", test_fraction), ("validation", validation_fraction)):
        train = [g for g in split_of if split_of[g] == "train"]
        if fraction > 0 and split not in split_of.values() and len(train) > 1:
            split_of[train[int(_rng(seed, "split-fallback", split).integers(len(train)))]] = split
    return [dataclasses.replace(s, split=split_of[voice_group(s.engine, s.voice)]) for s in speakers]


# ---------------------------------------------------------------------------------------------------------------
# Raw synthesis (engine output files)


def _festival_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def festival_script(voice: str, native_rate: float, items: list[tuple[str, Path]]) -> str:
    """A festival script that speaks each (text, wav path) in one process (festival takes ~0.3-0.8 s to start)."""
    lines = [f"(voice_{voice})"]
    if voice.endswith("_hts"):
        # HTS voices ignore Duration_Stretch; hts_engine's -r is its speed factor (checked: -r 0.7 lengthens).
        lines.append(
            f'(set! hts_engine_params (append {voice}::hts_engine_params (list (list "-r" {native_rate:.4f}))))'
        )
    else:
        lines.append(f"(Parameter.set 'Duration_Stretch {1 / native_rate:.4f})")
    for text, path in items:
        lines.append(
            f"(set! utt (Utterance Text {_festival_string(text)})) (utt.synth utt) "
            f"(utt.save.wave utt {_festival_string(str(path))} 'riff)"
        )
    return "\n".join(lines) + "\n"


Audio = tuple[np.ndarray, int]  # mono float32 samples and their sample rate


def _load(path: Path) -> Audio | None:
    if not path.exists() or path.stat().st_size <= 44:  # 44 bytes is a WAV header with no samples
        return None
    data, rate = read(path)
    return to_mono(data), rate


def _espeak_cmd(speaker: Speaker, path: Path, *, ssml: bool = False) -> list[str]:
    wpm = int(np.clip(round(ESPEAK_WPM * speaker.native_rate), *ESPEAK_WPM_RANGE))
    # Text goes on stdin, so a word starting with "-" is not read as an option.
    return ["espeak-ng", *(["-m"] if ssml else []), "-v", speaker.voice, "-s", str(wpm), "-w", str(path), "--stdin"]


def _espeak_batch(speaker: Speaker, texts: list[str], workdir: Path) -> list[Audio] | None:
    """All `texts` from one espeak-ng process, cut apart at the pauses put between them; None if the cut fails.

    espeak-ng spends ~12 ms starting and ~1.5 ms per word, so one process per speaker is ~8x cheaper than one per
    clip. Each word is its own SSML sentence, as when spoken alone (durations match a lone run within ~15 ms).
    Echo variants never fall fully silent between words: their cut finds the wrong count and they fall back.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / "batch.wav"
    pause = f'</s><break time="{ESPEAK_BATCH_PAUSE_MS}ms"/><s>'
    ssml = f"<speak><s>{pause.join(escape(t) for t in texts)}</s></speak>"
    done = _run(_espeak_cmd(speaker, path, ssml=True), input=ssml.encode())
    audio = _load(path) if done.returncode == 0 else None
    if audio is None:
        return None
    samples, rate = audio
    loud = np.flatnonzero(np.abs(samples) > 2 / 32768)  # espeak-ng's pauses are digital zero
    if len(loud) == 0:
        return None
    cuts = np.flatnonzero(np.diff(loud) > ESPEAK_BATCH_GAP_SECONDS * rate)
    starts, ends = loud[np.r_[0, cuts + 1]], loud[np.r_[cuts, len(loud) - 1]] + 1
    if len(starts) != len(texts):
        return None
    pad = int(0.1 * rate)  # keep some of the pause, like the silence around a lone word
    return [(samples[max(0, a - pad) : b + pad], rate) for a, b in zip(starts, ends, strict=True)]


def synthesize_raw(speaker: Speaker, texts: list[str], workdir: Path) -> tuple[list[Audio | None], str | None]:
    """Engine output for `texts` spoken by `speaker` (None where the engine failed), and the first error.

    festival speaks all `texts` in one process (it takes ~0.3-0.8 s to start), espeak-ng too when it can
    (`_espeak_batch`), flite runs once per text (~5-20 ms each).
    """
    workdir.mkdir(parents=True, exist_ok=True)
    paths = [workdir / f"{i}.wav" for i in range(len(texts))]
    rate = speaker.native_rate
    errors = []
    if speaker.engine == "espeak-ng" and len(texts) > 1:
        batch = _espeak_batch(speaker, texts, workdir)
        if batch is not None:
            return list(batch), None
    if speaker.engine == "festival":
        script = workdir / "batch.scm"
        script.write_text(festival_script(speaker.voice, rate, list(zip(texts, paths, strict=True))))
        done = _run(["festival", "-b", str(script)], text=True, timeout=600)
        if done.returncode != 0 or done.stderr.strip():
            errors.append(f"festival {speaker.voice}: {(done.stderr or '').strip()[-300:]}")
    else:
        for text, path in zip(texts, paths, strict=True):
            if speaker.engine == "espeak-ng":
                done = _run(_espeak_cmd(speaker, path), input=text.encode())
            elif speaker.engine == "flite":
                # Debian's one-voice binaries write the same bytes as `flite -voice` but start ~6 ms faster,
                # as they do not register every voice first.
                single = shutil.which(f"flite_cmu_us_{speaker.voice}")
                cmd = [single] if single else ["flite", "-voice", speaker.voice]
                cmd += ["--setf", f"duration_stretch={1 / rate:.4f}", "-t", text, "-o", str(path)]
                done = _run(cmd)
            else:
                raise ValueError(f"unknown engine {speaker.engine!r}; use one of {', '.join(ENGINES)}")
            if done.returncode != 0:
                errors.append(
                    f"{speaker.engine} {speaker.voice} {text!r}: {done.stderr.decode(errors='replace')[-300:]}"
                )
    out = [_load(p) for p in paths]
    if not errors and None in out:
        errors.append(f"{speaker.engine} {speaker.voice}: wrote no audio for {texts[out.index(None)]!r}")
    return out, errors[0] if errors else None


# ---------------------------------------------------------------------------------------------------------------
# Clip rendering


def _dbfs(value_db: float) -> float:
    return 10 ** (value_db / 20)


def pitch_shift(samples: np.ndarray, sample_rate: int, semitones: float, target_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Resample as if recorded at sample_rate * 2**(semitones/12): pitch, formants and speed shift together."""
    return resample(samples, sample_rate * 2 ** (semitones / 12), target_rate)


def trim_silence(samples: np.ndarray, sample_rate: int = SAMPLE_RATE) -> np.ndarray | None:
    """Cut leading/trailing frames more than TRIM_TOP_DB below the loudest; None if the whole clip is silent."""
    hop = max(1, int(FRAME_SECONDS * sample_rate))
    n_frames = len(samples) // hop
    if n_frames == 0:
        return None
    frames = samples[: n_frames * hop].reshape(n_frames, hop).astype(np.float64)
    rms = np.sqrt((frames**2).mean(axis=1))
    loudest = rms.max()
    if loudest < _dbfs(SILENT_DBFS):
        return None
    loud = np.flatnonzero(rms >= loudest * _dbfs(-TRIM_TOP_DB))
    edge = int(EDGE_SECONDS * sample_rate)
    start, end = max(0, loud[0] * hop - edge), min(len(samples), (loud[-1] + 1) * hop + edge)
    return samples[start:end]


def render_clip(
    samples: np.ndarray, sample_rate: int, pitch: float, clip_samples: int, rng: np.random.Generator
) -> tuple[np.ndarray | None, str]:
    """Engine output -> a finished clip: pitch-shifted, trimmed, fitted, placed, loudness-normalised, dithered.

    Returns (clip, "ok" | "compressed") or (None, "silent" | "too_long").
    """
    x = trim_silence(pitch_shift(to_mono(samples), sample_rate, pitch))
    if x is None:
        return None, "silent"
    status = "ok"
    room = int(MAX_SPEECH_FRACTION * clip_samples)
    if len(x) > room:
        ratio = len(x) / room
        if ratio > MAX_COMPRESSION:
            return None, "too_long"
        import librosa  # only the few over-long words need it, and it takes a second to import

        x = librosa.effects.time_stretch(x.astype(np.float32), rate=ratio)[:room]
        status = "compressed"
    rms = float(np.sqrt(np.mean(x.astype(np.float64) ** 2)))
    if rms < _dbfs(SILENT_DBFS):
        return None, "silent"
    x = x * (_dbfs(TARGET_RMS_DBFS) / rms)
    peak = float(np.abs(x).max())
    if peak > _dbfs(PEAK_CEILING_DBFS):
        x = x * (_dbfs(PEAK_CEILING_DBFS) / peak)
    slack = clip_samples - len(x)
    jitter = min(int(JITTER_SECONDS * SAMPLE_RATE), slack // 2)
    start = slack // 2 + int(rng.integers(-jitter, jitter + 1))
    out = rng.normal(0.0, _dbfs(NOISE_FLOOR_DBFS), clip_samples)
    out[start : start + len(x)] += x
    assert np.abs(out).max() < _dbfs(PEAK_LIMIT_DBFS), "peak ceiling leaves room for the noise floor"
    return out.astype(np.float32), status


def folder_name(word: str) -> str:
    """The folder of a word: lower case, spaces as "_" ("turn on" -> "turn_on")."""
    return "_".join(word.lower().split())


def clip_path(word: str, speaker: Speaker) -> str:
    """Relative POSIX path of a clip, as in the list files."""
    return f"{folder_name(word)}/{speaker.id}_nohash_0.wav"


@dataclass(frozen=True)
class _SpeakerTask:
    speaker: Speaker
    words: tuple[str, ...]
    out: str
    tmp: str
    seed: int
    clip_samples: int


def _render_speaker(task: _SpeakerTask) -> list[tuple[str, str, str | None]]:
    """Synthesize and write every word of one speaker: [(word, status, error)]."""
    spk = task.speaker
    workdir = Path(task.tmp) / spk.id
    raws, error = synthesize_raw(spk, list(task.words), workdir)
    results = []
    for word, raw in zip(task.words, raws, strict=True):
        if raw is None:
            results.append((word, "failed", error))
            continue
        data, rate = raw
        clip, status = render_clip(data, rate, spk.pitch, task.clip_samples, _rng(task.seed, spk.id, word))
        if clip is not None:
            write_atomic(Path(task.out) / clip_path(word, spk), wav_bytes(clip, SAMPLE_RATE))
        results.append((word, status, None))
    shutil.rmtree(workdir, ignore_errors=True)
    return results


# ---------------------------------------------------------------------------------------------------------------
# Background noise


def _normalise(x: np.ndarray, rms_dbfs: float = TARGET_RMS_DBFS) -> np.ndarray:
    x = x - x.mean()
    x = x * (_dbfs(rms_dbfs) / max(float(np.sqrt(np.mean(x**2))), 1e-12))
    peak = float(np.abs(x).max())
    if peak > _dbfs(PEAK_CEILING_DBFS):
        x = x * (_dbfs(PEAK_CEILING_DBFS) / peak)
    return x.astype(np.float32)


def _coloured_noise(n: int, rng: np.random.Generator, exponent: float, low_hz: float = 20.0) -> np.ndarray:
    """Noise with power ~ 1/f**exponent; flat below `low_hz` so brown noise does not drift like a DC offset."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1 / SAMPLE_RATE)
    spectrum *= np.maximum(freqs, low_hz) ** (-exponent / 2)
    spectrum[0] = 0
    return np.fft.irfft(spectrum, n)


def _mains_hum(n: int, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(n) / SAMPLE_RATE
    hum = np.zeros(n)
    for k in range(1, 9):
        # Transformer hum is strongest at odd harmonics; a slow wobble keeps it from being a pure test tone.
        amp = (1.0 if k % 2 else 0.5) / k
        wobble = 1 + 0.05 * np.sin(2 * np.pi * rng.uniform(0.05, 0.3) * t + rng.uniform(0, 2 * np.pi))
        hum += amp * wobble * np.sin(2 * np.pi * MAINS_HZ * k * t + rng.uniform(0, 2 * np.pi))
    hum /= np.sqrt(np.mean(hum**2))
    return hum + _dbfs(-30) * rng.standard_normal(n)


def _tokens(text: str) -> list[str]:
    return [w.strip(".,").lower() for w in text.split()]


def _check_babble_text() -> None:
    words = {w for s in BABBLE_SENTENCES for w in _tokens(s)}
    assert not words & BABBLE_AVOID, f"babble sentences contain keywords: {sorted(words & BABBLE_AVOID)}"


def babble_sentences(spoken: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """BABBLE_SENTENCES without the ones that say a word or phrase of `spoken` (the words the clips are of)."""
    _check_babble_text()
    phrases = [_tokens(w) for w in spoken]

    def says(sentence: str) -> bool:
        tokens = _tokens(sentence)
        return any(tokens[i : i + len(p)] == p for p in phrases if p for i in range(len(tokens) - len(p) + 1))

    return tuple(s for s in BABBLE_SENTENCES if not says(s))


def _babble(n: int, speakers: list[Speaker], sentences: tuple[str, ...], seed: int, tmp: Path) -> np.ndarray:
    """Overlapping streams of `sentences`, one stream per speaker, each looped to `n` samples."""
    mix = np.zeros(n)
    for i, spk in enumerate(speakers):
        rng = _rng(seed, "babble", i)
        text = " ".join(sentences[j] for j in rng.permutation(len(sentences)))
        (raw,), error = synthesize_raw(spk, [text], tmp / f"babble{i}")
        if raw is None:
            warnings.warn(f"babble stream {i} ({spk.engine} {spk.voice}) failed: {error}", stacklevel=2)
            continue
        data, rate = raw
        stream = pitch_shift(data, rate, spk.pitch).astype(np.float64)
        stream = np.tile(stream, n // max(len(stream), 1) + 2)
        start = int(rng.integers(0, len(stream) - n))  # each stream enters mid-sentence at its own point
        stream = stream[start : start + n]
        level = float(np.sqrt(np.mean(stream**2)))
        if level > 0:
            mix += stream / level * _dbfs(rng.uniform(-3, 3))
    return mix


def _babble_speakers(speakers: list[Speaker], seed: int) -> list[Speaker]:
    """BABBLE_STREAMS training voices spread over the engines (babble from held-out voices would leak them)."""
    train = [s for s in speakers if s.split == "train"]
    by_engine = {e: list(dict.fromkeys(s.voice for s in train if s.engine == e)) for e in ENGINES}
    by_engine = {e: v for e, v in by_engine.items() if v}
    if not by_engine:
        return []
    counts = _apportion(BABBLE_STREAMS, {e: ENGINE_SHARES[e] for e in by_engine})
    rng = _rng(seed, "babble-voices")
    chosen = []
    for engine, count in counts.items():
        voices = [by_engine[engine][i] for i in rng.permutation(len(by_engine[engine]))]
        for j in range(count):
            pitch = round(float(rng.uniform(*PITCH_RANGE)), 2)
            chosen.append(Speaker(engine, voices[j % len(voices)], 1.0, pitch))
    return chosen


# ---------------------------------------------------------------------------------------------------------------
# Non-stationary background: short events over a quiet floor (see the module docstring for why)
#
# Each event is built at peak 1 and placed at a random level; the finished recording is scaled so that its
# loudest event peaks at PEAK_CEILING_DBFS, over a NOISE_FLOOR_DBFS floor. Onsets follow each other by at most
# the upper end of the spacing, so a 1 s crop (a `_silence_` example) almost always holds an event.

TRANSIENT_SPACING_SECONDS = (0.05, 0.8)  # onset to onset, uniform: ~2.4 events a second
TRANSIENT_LEVEL_DB = 20.0  # each event's peak is drawn in +/- this: a knock next door and a click at the mic
# kind -> weight: how often each kind of transient is drawn
TRANSIENT_KINDS = {"click": 3, "impulse": 1, "shutter": 2, "clatter": 2, "knock": 2, "door": 1, "keyboard": 2}
TONE_SPACING_SECONDS = (0.1, 1.0)  # onset to onset: tones may overlap, as two devices beeping at once do
TONE_SECONDS = (0.05, 1.0)  # duration of one tone event, log-uniform (short beeps are the common ones)
TONE_LEVEL_DB = 10.0
TONE_HZ = (300.0, 4000.0)  # beeps and warbles
SWEEP_HZ = (200.0, 6000.0)  # chirps start and end in this range
TONE_FADE_SECONDS = 0.005  # raised-cosine edges: the click of an abrupt onset is the transients' job
TONE_KINDS = {"beep": 3, "beeps": 2, "linear_sweep": 2, "exponential_sweep": 2, "dual_tone": 2, "warble": 2}
DTMF_LOW_HZ = (697.0, 770.0, 852.0, 941.0)  # telephone keypad rows
DTMF_HIGH_HZ = (1209.0, 1336.0, 1477.0, 1633.0)  # and columns: each key is one of each
MUSIC_SEGMENT_SECONDS = (4.0, 12.0)  # one tempo, key and arrangement
MUSIC_PAUSE_SECONDS = (0.0, 0.4)  # between segments
MUSIC_TEMPO_BPM = (70.0, 160.0)
MUSIC_ROOT_MIDI = (45, 57)  # key root A2..A3; chords an octave above it, melodies two
MUSIC_SEGMENT_LEVEL_DB = 6.0  # a segment is louder or quieter than the others by up to this
MUSIC_FADE_SECONDS = 0.02  # at the segment edges
MUSIC_PART_PROBS = {"melody": 0.8, "chords": 0.7, "drums": 0.6}  # each segment has at least one part
SCALES = ((0, 2, 4, 5, 7, 9, 11), (0, 2, 3, 5, 7, 8, 10))  # major and natural minor, semitones above the root
PROGRESSIONS = ((0, 3, 4, 0), (0, 5, 3, 4), (0, 4, 5, 3), (5, 3, 0, 4))  # scale degrees, one chord per bar
MELODY_BEATS = (0.5, 0.5, 1.0, 1.0, 1.0, 2.0)  # note lengths drawn from, in beats
MELODY_REST_PROB = 0.15
MAX_PARTIAL_HZ = 0.45 * SAMPLE_RATE  # harmonics above this would alias


def _samples(seconds: float) -> int:
    return int(round(seconds * SAMPLE_RATE))


def _time(n: int) -> np.ndarray:
    return np.arange(n) / SAMPLE_RATE


def _log_uniform(rng: np.random.Generator, low: float, high: float) -> float:
    return float(np.exp(rng.uniform(np.log(low), np.log(high))))


def _add_at(dst: np.ndarray, event: np.ndarray, at: int) -> None:
    """dst[at:] += event, cut at the end of `dst`."""
    end = min(len(dst), at + len(event))
    if end > at:
        dst[at:end] += event[: end - at]


def _peak_one(x: np.ndarray) -> np.ndarray:
    peak = float(np.abs(x).max()) if len(x) else 0.0
    return x / peak if peak > 0 else x


def _band_noise(n: int, rng: np.random.Generator, low_hz: float, high_hz: float) -> np.ndarray:
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1 / SAMPLE_RATE)
    spectrum[(freqs < low_hz) | (freqs > high_hz)] = 0
    return np.fft.irfft(spectrum, n)


def _burst(rng: np.random.Generator, low_hz: float, high_hz: float, tau: float) -> np.ndarray:
    """Band-limited noise decaying with time constant `tau` s, cut at 6 tau (-52 dB): a tap, a rattle, a hat."""
    n = max(16, _samples(6 * tau))
    return _band_noise(n, rng, low_hz, high_hz) * np.exp(-_time(n) / tau)


def _ring(rng: np.random.Generator, freq: float, tau: float) -> np.ndarray:
    """A decaying resonance: a knocked door panel, a struck plate."""
    n = max(16, _samples(6 * tau))
    return np.sin(2 * np.pi * freq * _time(n) + rng.uniform(0, 2 * np.pi)) * np.exp(-_time(n) / tau)


def _click(rng: np.random.Generator) -> np.ndarray:
    return _burst(rng, rng.uniform(300, 2000), SAMPLE_RATE / 2, rng.uniform(2e-4, 1e-3))


def _impulse(rng: np.random.Generator) -> np.ndarray:
    """A single-sample spike, as a dropout or a static discharge makes."""
    x = np.zeros(_samples(0.002))
    x[0] = rng.choice((-1.0, 1.0))
    return x


def _shutter(rng: np.random.Generator) -> np.ndarray:
    """Two clicks 40-150 ms apart with a short mechanical rattle: a camera shutter, a latch."""
    gap = rng.uniform(0.04, 0.15)
    x = np.zeros(_samples(gap + 0.12))
    for at, level in ((0.0, 1.0), (gap, rng.uniform(0.4, 1.0))):
        _add_at(x, level * _peak_one(_burst(rng, 1500, 7500, rng.uniform(5e-4, 2e-3))), _samples(at))
        _add_at(x, 0.25 * level * _peak_one(_burst(rng, 2000, 6000, rng.uniform(0.005, 0.015))), _samples(at))
    return x


def _clatter(rng: np.random.Generator) -> np.ndarray:
    """3-8 quick hits of band-limited noise, some ringing: cutlery, dishes, something dropped."""
    onsets = np.cumsum(rng.uniform(0.015, 0.12, int(rng.integers(3, 9))))
    onsets -= onsets[0]
    x = np.zeros(_samples(onsets[-1] + 0.9))
    for at in onsets:
        centre = rng.uniform(800, 5000)
        width = centre * rng.uniform(0.3, 1.0)
        level = _dbfs(rng.uniform(-10, 0))
        hit = _burst(rng, centre - width / 2, centre + width / 2, rng.uniform(0.01, 0.06))
        _add_at(x, level * _peak_one(hit), _samples(at))
        for _ in range(int(rng.integers(0, 3))):
            _add_at(x, 0.4 * level * _ring(rng, rng.uniform(1000, 6000), rng.uniform(0.03, 0.15)), _samples(at))
    return x


def _knock(rng: np.random.Generator) -> np.ndarray:
    """1-4 knocks on a door or a table: low resonances with a short thud."""
    knocks, spacing, freq = int(rng.integers(1, 5)), rng.uniform(0.12, 0.25), rng.uniform(80, 300)
    x = np.zeros(_samples(knocks * spacing + 0.3))
    for i in range(knocks):
        level = _dbfs(rng.uniform(-4, 0))
        _add_at(x, level * _ring(rng, freq * rng.uniform(0.95, 1.05), rng.uniform(0.015, 0.04)), _samples(i * spacing))
        _add_at(x, 0.5 * level * _peak_one(_burst(rng, 50, 1500, 0.004)), _samples(i * spacing))
    return x


def _door(rng: np.random.Generator) -> np.ndarray:
    """A door closing: a low thump with rumble, and the latch clicking around it."""
    x = np.zeros(_samples(1.3))
    _add_at(x, _ring(rng, rng.uniform(45, 100), rng.uniform(0.08, 0.2)), 0)
    _add_at(x, 0.5 * _peak_one(_burst(rng, 30, 800, rng.uniform(0.03, 0.1))), 0)
    _add_at(x, _dbfs(rng.uniform(-12, -3)) * _peak_one(_click(rng)), _samples(rng.uniform(0, 0.08)))
    return x


def _keyboard(rng: np.random.Generator) -> np.ndarray:
    """4-15 keystrokes: a press click with a small thud, and a quieter release click 40-100 ms later."""
    onsets = np.cumsum(rng.uniform(0.07, 0.25, int(rng.integers(4, 16))))
    onsets -= onsets[0]
    x = np.zeros(_samples(onsets[-1] + 0.15))
    for at in onsets:
        level = _dbfs(rng.uniform(-6, 0))
        _add_at(x, level * _peak_one(_burst(rng, 1000, 6000, rng.uniform(0.001, 0.003))), _samples(at))
        _add_at(x, 0.3 * level * _ring(rng, rng.uniform(200, 500), 0.005), _samples(at))
        release = _dbfs(rng.uniform(-12, -6)) * level * _peak_one(_burst(rng, 1500, 7000, 0.001))
        _add_at(x, release, _samples(at + rng.uniform(0.04, 0.1)))
    return x


def _fade(x: np.ndarray, seconds: float) -> np.ndarray:
    k = min(_samples(seconds), len(x) // 2)
    if k > 0:
        ramp = 0.5 - 0.5 * np.cos(np.pi * np.arange(k) / k)
        x[:k] *= ramp
        x[len(x) - k :] *= ramp[::-1]
    return x


def _tone_samples(rng: np.random.Generator) -> int:
    return _samples(_log_uniform(rng, *TONE_SECONDS))


def _beep(rng: np.random.Generator, n: int | None = None, freq: float | None = None) -> np.ndarray:
    """A sine beep; half of them square-ish (odd harmonics), like a piezo buzzer."""
    n = _tone_samples(rng) if n is None else n
    freq = _log_uniform(rng, *TONE_HZ) if freq is None else freq
    phase = 2 * np.pi * freq * _time(n) + rng.uniform(0, 2 * np.pi)
    x = np.sin(phase)
    if rng.random() < 0.5:
        for k in (3, 5, 7):
            if k * freq < MAX_PARTIAL_HZ:
                x += np.sin(k * phase) / k
    return _fade(x, TONE_FADE_SECONDS)


def _beeps(rng: np.random.Generator) -> np.ndarray:
    """2-5 beeps of one pitch, like a microwave, a reversing truck or a door left open."""
    on, off, freq = rng.uniform(0.05, 0.15), rng.uniform(0.05, 0.15), _log_uniform(rng, *TONE_HZ)
    count = int(np.clip((TONE_SECONDS[1] + off) // (on + off), 1, int(rng.integers(2, 6))))
    x = np.zeros(_samples(count * (on + off)))
    for i in range(count):
        _add_at(x, _beep(rng, _samples(on), freq), _samples(i * (on + off)))
    return x


def _sweep(rng: np.random.Generator, exponential: bool) -> np.ndarray:
    """A chirp from one frequency to another, linear or exponential in frequency, up or down."""
    n = _tone_samples(rng)
    seconds, t = n / SAMPLE_RATE, _time(n)
    f0 = _log_uniform(rng, *SWEEP_HZ)
    f1 = f0
    while abs(np.log(f1 / f0)) < 0.3:  # at least ~a third of an octave, or it is a beep
        f1 = _log_uniform(rng, *SWEEP_HZ)
    if exponential:
        k = np.log(f1 / f0)
        phase = 2 * np.pi * f0 * seconds / k * (np.exp(k * t / seconds) - 1)
    else:
        phase = 2 * np.pi * (f0 * t + (f1 - f0) * t**2 / (2 * seconds))
    return _fade(np.sin(phase), TONE_FADE_SECONDS)


def _dual_tone(rng: np.random.Generator) -> np.ndarray:
    """Telephone keypad (DTMF) tones: one low and one high tone per key, 50-200 ms each."""
    total = _log_uniform(rng, *TONE_SECONDS)
    x, at = np.zeros(_samples(total) + _samples(0.2)), 0.0
    while True:
        seconds = rng.uniform(0.05, 0.2)
        if at > 0 and at + seconds > total:
            break
        t = _time(_samples(seconds))
        low, high = rng.choice(DTMF_LOW_HZ), rng.choice(DTMF_HIGH_HZ)
        key = np.sin(2 * np.pi * low * t) + np.sin(2 * np.pi * high * t)
        _add_at(x, _fade(key, TONE_FADE_SECONDS), _samples(at))
        at += seconds + rng.uniform(0.04, 0.1)
    return x[: _samples(at)]


def _warble(rng: np.random.Generator) -> np.ndarray:
    """A frequency-modulated tone, like an alarm or a phone ringer: 4-20 wobbles a second, 3-25 % deep."""
    n = _tone_samples(rng)
    t = _time(n)
    carrier, rate, depth = _log_uniform(rng, 500, 2500), rng.uniform(4, 20), rng.uniform(0.03, 0.25)
    # Instantaneous frequency carrier * (1 + depth * sin(2 pi rate t)), integrated.
    phase = 2 * np.pi * carrier * (t - depth / (2 * np.pi * rate) * np.cos(2 * np.pi * rate * t))
    return _fade(np.sin(phase), TONE_FADE_SECONDS)


_TRANSIENT_MAKERS = {
    "click": _click,
    "impulse": _impulse,
    "shutter": _shutter,
    "clatter": _clatter,
    "knock": _knock,
    "door": _door,
    "keyboard": _keyboard,
}
_TONE_MAKERS = {
    "beep": _beep,
    "beeps": _beeps,
    "linear_sweep": lambda rng: _sweep(rng, exponential=False),
    "exponential_sweep": lambda rng: _sweep(rng, exponential=True),
    "dual_tone": _dual_tone,
    "warble": _warble,
}


def _events(
    n: int,
    rng: np.random.Generator,
    makers: dict,
    weights: dict[str, float],
    spacing: tuple[float, float],
    level_db: float,
) -> np.ndarray:
    """Events of random kinds (drawn by `weights`) at peaks in +/- `level_db`, onsets `spacing` s apart."""
    kinds = list(weights)
    p = np.array([weights[k] for k in kinds], dtype=float)
    p /= p.sum()
    x = np.zeros(n)
    at = _samples(rng.uniform(0, spacing[1]))
    while True:
        event = _peak_one(makers[kinds[int(rng.choice(len(kinds), p=p))]](rng))
        if at + len(event) > n:  # not cut off at the end: a cut decay would be a click of its own
            return x
        x[at : at + len(event)] += _dbfs(rng.uniform(-level_db, level_db)) * event
        at += _samples(rng.uniform(*spacing))


def _transients(n: int, rng: np.random.Generator) -> np.ndarray:
    """Clicks, impulses, shutters, clatter, knocks, doors and typing at random times and levels."""
    return _events(n, rng, _TRANSIENT_MAKERS, TRANSIENT_KINDS, TRANSIENT_SPACING_SECONDS, TRANSIENT_LEVEL_DB)


def _tones_and_chirps(n: int, rng: np.random.Generator) -> np.ndarray:
    """Beeps, beep trains, linear and exponential chirps, keypad tones and warbles of 50 ms to 1 s."""
    return _events(n, rng, _TONE_MAKERS, TONE_KINDS, TONE_SPACING_SECONDS, TONE_LEVEL_DB)


def _midi_hz(note: float) -> float:
    return 440.0 * 2 ** ((note - 69) / 12)


def _adsr(n_on: int, attack: float, decay: float, sustain: float, release: float) -> np.ndarray:
    """Attack-decay-sustain-release envelope of a note held `n_on` samples (release after it)."""
    held = max(attack + decay, n_on / SAMPLE_RATE)
    times = [0.0, attack, attack + decay, held, held + release]
    return np.interp(_time(_samples(held + release)), times, [0.0, 1.0, sustain, sustain, 0.0])


def _timbre(rng: np.random.Generator, sustained: bool) -> tuple[np.ndarray, tuple[float, float, float, float]]:
    """Harmonic amplitudes and an ADSR: plucked/struck for melodies, slow and sustained for chords."""
    amps = np.arange(1, int(rng.integers(3, 11)) + 1) ** -rng.uniform(0.7, 2.0)
    if rng.random() < 0.3:
        amps[1::2] *= 0.2  # weak even harmonics: hollow, clarinet-like
    if sustained:
        adsr = (rng.uniform(0.02, 0.15), rng.uniform(0.1, 0.3), rng.uniform(0.6, 0.9), rng.uniform(0.1, 0.3))
    else:
        adsr = (rng.uniform(0.003, 0.03), rng.uniform(0.05, 0.3), rng.uniform(0.2, 0.8), rng.uniform(0.05, 0.2))
    return amps, adsr


def _note(rng: np.random.Generator, freq: float, seconds: float, timbre) -> np.ndarray:
    amps, adsr = timbre
    env = _adsr(_samples(seconds), *adsr)
    keep = np.flatnonzero(np.arange(1, len(amps) + 1) * freq < MAX_PARTIAL_HZ)
    phases = 2 * np.pi * freq * np.outer(keep + 1, _time(len(env))) + rng.uniform(0, 2 * np.pi, (len(keep), 1))
    return (amps[keep] @ np.sin(phases)) * env


def _kick(rng: np.random.Generator) -> np.ndarray:
    """A kick drum: a sine sweeping down from ~130 Hz to ~50 Hz in tens of ms, decaying."""
    t = _time(_samples(0.35))
    high, low, tau = rng.uniform(100, 160), rng.uniform(40, 60), rng.uniform(0.015, 0.04)
    phase = 2 * np.pi * (low * t + (high - low) * tau * (1 - np.exp(-t / tau)))
    return np.sin(phase) * np.exp(-t / rng.uniform(0.08, 0.2))


def _snare(rng: np.random.Generator) -> np.ndarray:
    x = np.zeros(_samples(0.5))
    _add_at(x, _ring(rng, rng.uniform(160, 240), 0.03), 0)
    _add_at(x, _peak_one(_burst(rng, 1000, 7000, rng.uniform(0.04, 0.08))), 0)
    return x


def _hat(rng: np.random.Generator) -> np.ndarray:
    """A hi-hat: short high-passed noise."""
    return _burst(rng, rng.uniform(5000, 7000), SAMPLE_RATE / 2, rng.uniform(0.005, 0.02))


def _music_segment(rng: np.random.Generator) -> np.ndarray:
    """A few bars at one tempo and key: melody, chords and drums, each part present or not."""
    beat = 60.0 / rng.uniform(*MUSIC_TEMPO_BPM)
    bars = max(1, int(rng.uniform(*MUSIC_SEGMENT_SECONDS) / (4 * beat)))
    root, scale = int(rng.integers(MUSIC_ROOT_MIDI[0], MUSIC_ROOT_MIDI[1] + 1)), SCALES[int(rng.integers(2))]
    progression = PROGRESSIONS[int(rng.integers(len(PROGRESSIONS)))]
    parts = {name: rng.random() < prob for name, prob in MUSIC_PART_PROBS.items()}
    if not any(parts.values()):
        parts["melody"] = True
    end = bars * 4 * beat

    def pitch(degree: int, octave: int) -> float:
        return _midi_hz(root + 12 * (octave + degree // 7) + scale[degree % 7])

    n = _samples(end + 1.0)  # room for the last release
    mix = np.zeros(n)
    if parts["chords"]:
        x, timbre = np.zeros(n), _timbre(rng, sustained=True)
        for bar in range(bars):
            degree = progression[bar % len(progression)]
            for step in (0, 2, 4):  # a triad
                _add_at(x, _note(rng, pitch(degree + step, 1), 4 * beat * 0.95, timbre), _samples(bar * 4 * beat))
        mix += _dbfs(rng.uniform(-6, -2)) * _peak_one(x)
    if parts["melody"]:
        x, timbre = np.zeros(n), _timbre(rng, sustained=False)
        at, degree = 0.0, int(rng.integers(0, 7))
        while at < end:
            beats = float(rng.choice(MELODY_BEATS))
            if rng.random() >= MELODY_REST_PROB:
                _add_at(x, _note(rng, pitch(degree, 2), beats * beat * 0.9, timbre), _samples(at))
            degree = int(np.clip(degree + rng.integers(-2, 3), 0, 11))
            at += beats * beat
        mix += _peak_one(x)
    if parts["drums"]:
        x = np.zeros(n)
        kick, snare, hat = _kick(rng), _snare(rng), _hat(rng)
        kicks = (0, 2, 2.5) if rng.random() < 0.5 else (0, 2)
        hats = np.arange(0, 4, 0.5 if rng.random() < 0.7 else 1.0)
        with_snare = rng.random() < 0.7
        for bar in range(bars):
            for beat_at in kicks:
                _add_at(x, kick * _dbfs(rng.uniform(-2, 0)), _samples((bar * 4 + beat_at) * beat))
            for beat_at in (1, 3) if with_snare else ():
                _add_at(x, 0.6 * snare * _dbfs(rng.uniform(-2, 0)), _samples((bar * 4 + beat_at) * beat))
            for beat_at in hats:
                accent = 0.0 if beat_at % 1 == 0 else -4.0
                _add_at(x, 0.3 * hat * _dbfs(accent + rng.uniform(-2, 0)), _samples((bar * 4 + beat_at) * beat))
        mix += _dbfs(rng.uniform(-6, 0)) * _peak_one(x)
    mix = mix[: _samples(end) + _samples(0.5)]
    return _fade(_peak_one(mix), MUSIC_FADE_SECONDS) * _dbfs(
        rng.uniform(-MUSIC_SEGMENT_LEVEL_DB, MUSIC_SEGMENT_LEVEL_DB)
    )


def _music(n: int, rng: np.random.Generator) -> np.ndarray:
    """Music-like segments one after another, each with its own tempo, key, instruments and level."""
    x, at = np.zeros(n), 0
    while at < n:
        segment = _music_segment(rng)
        _add_at(x, segment, at)  # the last one is cut at the end, where its fade-out would have been
        at += len(segment) + _samples(rng.uniform(*MUSIC_PAUSE_SECONDS))
    return _fade(x, MUSIC_FADE_SECONDS)


NON_STATIONARY = {"transients": _transients, "tones_and_chirps": _tones_and_chirps, "music": _music}
NOISES = ("white_noise", "pink_noise", "brown_noise", "mains_hum", "babble", *NON_STATIONARY)


def _render_noise(
    name: str, n: int, seed: int, out: str, babble_speakers: list[Speaker], babble_text: tuple[str, ...], tmp: str
) -> str:
    rng = _rng(seed, "noise", name)
    if name == "white_noise":
        x = _normalise(rng.standard_normal(n))
    elif name == "pink_noise":
        x = _normalise(_coloured_noise(n, rng, 1.0))
    elif name == "brown_noise":
        x = _normalise(_coloured_noise(n, rng, 2.0))
    elif name == "mains_hum":
        x = _normalise(_mains_hum(n, rng))
    elif name == "babble":
        x = _normalise(_babble(n, babble_speakers, babble_text, seed, Path(tmp)))
    elif name in NON_STATIONARY:
        # Levelled by the loudest event, not by RMS: the RMS of sparse events says little about how loud they are.
        events = NON_STATIONARY[name](n, rng)
        x = _peak_one(events) * _dbfs(PEAK_CEILING_DBFS) + rng.normal(0.0, _dbfs(NOISE_FLOOR_DBFS), n)
    else:
        raise ValueError(f"unknown noise {name!r}; one of {', '.join(NOISES)}")
    rel = f"{BACKGROUND_NOISE_DIR}/{name}.wav"
    write_atomic(Path(out) / rel, wav_bytes(x.astype(np.float32), SAMPLE_RATE))
    return rel


# ---------------------------------------------------------------------------------------------------------------
# The run


@dataclass
class SynthSummary:
    """What `synthesize` made (also stored in synth.json)."""

    out: str
    clips_written: int = 0
    extra_word_clips: int = field(default=0, metadata={"help": "of clips_written, clips of extra non-keyword words"})
    dropped_silent: int = 0
    dropped_too_long: int = 0
    dropped_failed: int = 0
    time_compressed: int = field(default=0, metadata={"help": "clips kept after compressing over-long speech"})
    speakers_per_split: dict[str, int] = field(default_factory=dict)
    voices_per_split: dict[str, int] = field(default_factory=dict)  # engine + voice
    voice_groups_per_split: dict[str, int] = field(default_factory=dict)  # the unit of splitting (see voice_group)
    clips_per_split: dict[str, int] = field(default_factory=dict)
    realised_fractions: dict[str, dict[str, float]] = field(default_factory=dict)
    engines_used: dict[str, int] = field(default_factory=dict)  # engine -> speakers
    engines_skipped: dict[str, str] = field(default_factory=dict)  # engine -> why, and what to install
    noise_files: list[str] = field(default_factory=list)
    seconds: float = 0.0
    clips_per_second: float = 0.0

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _checked_words(given, option: str) -> list[str]:
    """`given` lower-cased, blanks dropped, each a usable folder name and none repeated."""
    words = [" ".join(w.lower().split()) for w in given if w.strip()]
    folders = [folder_name(w) for w in words]
    for word, folder in zip(words, folders, strict=True):
        if folder.startswith((".", "_")) or re.search(r"[/\\\x00]", folder):
            raise ValueError(
                f"{option} {word!r} cannot be a folder name (no leading '.' or '_', no slashes); rename the word"
            )
    dupes = sorted({f for f in folders if folders.count(f) > 1})
    if dupes:
        raise ValueError(f"{option} repeat {dupes} (case and spaces ignored); give each word once")
    return words


def _words(cfg: SynthConfig) -> list[str]:
    return _checked_words(cfg.words or SC35_WORDS, "--words")


def _extra_words(cfg: SynthConfig, words: list[str]) -> list[str]:
    """The extra non-keyword words speakers draw from: EXTRA_WORDS with the default --words, none with your own
    --words (their neighbours are not these), --extra-words when given."""
    if cfg.extra_words_per_speaker == 0:
        return []
    if cfg.extra_words is None:
        return list(EXTRA_WORDS) if cfg.words is None else []
    extra = _checked_words(cfg.extra_words, "--extra-words")
    both = sorted({folder_name(w) for w in extra} & {folder_name(w) for w in words})
    if both:
        raise ValueError(f"--extra-words {both} are also in --words; give each word in one list only")
    return extra


def plan_extra_words(pool: list[str], speaker_ids: list[str], per_speaker: int, seed: int) -> dict[str, list[str]]:
    """Each speaker's extra words: `per_speaker` of `pool` (all if fewer), drawn by (seed, speaker id, "extra")."""
    k = min(per_speaker, len(pool))
    plan = {}
    for sid in speaker_ids:
        picked = np.sort(_rng(seed, sid, "extra").choice(len(pool), size=k, replace=False))
        plan[sid] = [pool[i] for i in picked]
    return plan


def _check_engines(cfg: SynthConfig) -> list[str]:
    unknown = [e for e in cfg.engines if e not in ENGINES]
    if unknown:
        raise ValueError(f"--engines {','.join(unknown)}: unknown engine; use any of {','.join(ENGINES)}")
    if not cfg.engines:
        raise ValueError(f"--engines is empty; use any of {','.join(ENGINES)}")
    return [e for e in ENGINES if e in cfg.engines]


def _prepare_out(out: Path, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file; give a folder")
    if out.is_dir() and any(out.iterdir()):
        if not overwrite:
            raise ValueError(
                f"--out {out} exists and is not empty; pass --overwrite to replace it or choose a new folder"
            )
        if not (out / SYNTH_JSON).exists():
            # Refuse to empty a folder we did not make: --overwrite on the wrong path must not delete a home dir.
            raise ValueError(f"--out {out} {_NOT_OURS}; --overwrite only replaces one; empty it yourself")
        for child in out.iterdir():
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child)
            else:
                child.unlink()
    out.mkdir(parents=True, exist_ok=True)


def write_atomic(path: Path, data: bytes | str) -> None:
    """Write a file so that an interrupted run leaves the old file or the new one, never half of one.

    Unlike kwslib.audio.write_wav this does not fsync: libsndfile's fsync on close made a 1,050-clip run 1.6x
    slower on two cores, and the rename alone already gives the all-or-nothing file this needs.
    """
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    os.replace(tmp, path)


def _realised(summary: SynthSummary, speakers: list[Speaker], clips: dict[str, list[str]]) -> None:
    def count(key) -> dict[str, int]:
        return {split: len({key(s) for s in speakers if s.split == split}) for split in SPLITS}

    per = {
        "speakers": count(lambda s: s.id),
        "voices": count(lambda s: (s.engine, s.voice)),
        "voice_groups": count(lambda s: voice_group(s.engine, s.voice)),
        "clips": {split: len(clips[split]) for split in SPLITS},
    }
    summary.speakers_per_split, summary.voices_per_split = per["speakers"], per["voices"]
    summary.voice_groups_per_split, summary.clips_per_split = per["voice_groups"], per["clips"]
    totals = {k: sum(v.values()) for k, v in per.items()}
    summary.realised_fractions = {
        split: {k: round(per[k][split] / totals[k], 4) if totals[k] else 0.0 for k in per} for split in SPLITS[1:]
    }


def synthesize(cfg: SynthConfig, *, progress: bool = True) -> SynthSummary:
    """Write a synthetic Speech Commands dataset to `cfg.out` and return what was made."""
    started = time.perf_counter()
    words = _words(cfg)
    extra_pool = _extra_words(cfg, words)
    babble_text = babble_sentences(words + extra_pool)
    if not babble_text:
        raise ValueError(
            "--words/--extra-words together name a word of every babble sentence, which leaves no babble; "
            "drop common words such as 'the' from them"
        )
    engines = _check_engines(cfg)
    if cfg.noise_seconds < MIN_NOISE_SECONDS:
        raise ValueError(
            f"--noise-seconds {cfg.noise_seconds} is too short: Speech Commands background noises are "
            f">= {MIN_NOISE_SECONDS:.0f} s; use --noise-seconds {MIN_NOISE_SECONDS:.0f} or more"
        )
    out = Path(cfg.out)
    if out.is_dir() and any(out.iterdir()) and not cfg.overwrite:  # fail before the slow engine probe
        _prepare_out(out, overwrite=False)

    voices, skipped = engine_voices(engines)
    for engine, reason in skipped.items():
        warnings.warn(f"TTS engine {engine} skipped: {reason}", MissingEngineWarning, stacklevel=2)
    if not voices:
        if set(engines) == set(ENGINES):
            raise ValueError(f"no TTS engine found; install one: {INSTALL_ALL}")
        packages = " ".join(_install_hint(e, skipped[e]) for e in engines)
        raise ValueError(
            f"none of --engines {','.join(engines)} can be used; install: sudo apt-get install {packages} "
            f"(or allow more engines: --engines {','.join(ENGINES)})"
        )

    speakers = assign_splits(
        plan_speakers(cfg.speakers, voices, cfg.seed), cfg.validation_fraction, cfg.test_fraction, cfg.seed
    )
    extra_of = plan_extra_words(extra_pool, [s.id for s in speakers], cfg.extra_words_per_speaker, cfg.seed)
    extra_used = [w for w in extra_pool if any(w in said for said in extra_of.values())]
    summary = SynthSummary(out=str(out), engines_skipped=skipped)
    summary.engines_used = dict(Counter(s.engine for s in speakers))
    meta = {
        "complete": False,
        "config": dataclasses.asdict(cfg),
        "words": {w: folder_name(w) for w in words + extra_used},
        "extra_words": {"per_speaker": cfg.extra_words_per_speaker, "pool": extra_pool, "by_speaker": extra_of},
        "engine_versions": {e: _engine_version(e) for e in voices},
        "dropped_espeak_variants": ESPEAK_DROPPED_VARIANTS,
        "speakers": {s.id: s.to_dict() for s in speakers},
    }
    _prepare_out(out, cfg.overwrite)
    # Written first so that an interrupted run is still recognised as ours by --overwrite.
    write_atomic(out / SYNTH_JSON, json.dumps(meta, indent=2) + "\n")
    for word in words + extra_used:
        (out / folder_name(word)).mkdir(exist_ok=True)
    (out / BACKGROUND_NOISE_DIR).mkdir(exist_ok=True)

    clip_samples = int(round(cfg.clip_seconds * SAMPLE_RATE))
    noise_samples = int(round(cfg.noise_seconds * SAMPLE_RATE))
    drops, errors = [], []
    clips: dict[str, list[str]] = {split: [] for split in SPLITS}
    by_id = {s.id: s for s in speakers}
    jobs = cfg.jobs or os.cpu_count() or 1
    from tqdm.auto import tqdm

    with tempfile.TemporaryDirectory(prefix="kws-synth-") as tmp:
        tasks = [
            _SpeakerTask(s, tuple(words + extra_of[s.id]), str(out), tmp, cfg.seed, clip_samples) for s in speakers
        ]
        babble_speakers = _babble_speakers(speakers, cfg.seed)
        noise_args = [(name, noise_samples, cfg.seed, str(out), babble_speakers, babble_text, tmp) for name in NOISES]
        extra_set = set(extra_pool)

        def record(spk: Speaker, results) -> None:
            for word, status, error in results:
                if status in ("ok", "compressed"):
                    summary.clips_written += 1
                    summary.extra_word_clips += word in extra_set
                    summary.time_compressed += status == "compressed"
                    clips[spk.split].append(clip_path(word, spk))
                else:
                    setattr(summary, f"dropped_{status}", getattr(summary, f"dropped_{status}") + 1)
                    drops.append({"speaker": spk.id, "word": word, "reason": status})
                    if error:
                        errors.append(error)

        with tqdm(total=sum(len(t.words) for t in tasks), desc="synth", unit="clip", disable=not progress) as bar:
            if jobs == 1:
                for task in tasks:
                    record(task.speaker, _render_speaker(task))
                    bar.update(len(task.words))
                summary.noise_files = [_render_noise(*args) for args in noise_args]
            else:
                with ProcessPoolExecutor(max_workers=jobs) as pool:
                    # Babble is the slowest noise; submitted first so it does not finish last on its own.
                    noise_futures = [pool.submit(_render_noise, *args) for args in noise_args]
                    futures = {pool.submit(_render_speaker, task): task.speaker.id for task in tasks}
                    for future in as_completed(futures):
                        record(by_id[futures[future]], future.result())
                        bar.update(len(future.result()))
                    summary.noise_files = [f.result() for f in noise_futures]

    if errors:
        warnings.warn(f"{len(errors)} clips failed in the TTS engine; first error: {errors[0]}", stacklevel=2)
    for split, name in (("validation", VALIDATION_LIST), ("test", TESTING_LIST)):
        write_atomic(out / name, "".join(f"{p}\n" for p in sorted(clips[split])))
    _realised(summary, speakers, clips)
    summary.seconds = round(time.perf_counter() - started, 3)
    summary.clips_per_second = round(summary.clips_written / summary.seconds, 2) if summary.seconds else 0.0
    meta.update(complete=True, summary=summary.to_dict(), drops=sorted(drops, key=lambda d: (d["speaker"], d["word"])))
    write_atomic(out / SYNTH_JSON, json.dumps(meta, indent=2) + "\n")
    return summary
