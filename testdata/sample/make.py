#!/usr/bin/env python3
"""Make Parley's bundled sample meeting: a short synthetic design review, one track per speaker.

Usage: python3 make.py   (needs espeak-ng, sox and opusenc from opus-tools)

Writes <speaker>.opus (Ogg/Opus, 48 kHz mono, 24 kbit/s, 20 ms frames; every track the full
length of the meeting, silent where that person does not speak, as an SFU delivers them) and
reference.json (who said what, when) into this folder. The audio is synthesised locally, so the
output is ours to ship (CC0).
"""
import json
import os
import subprocess
import sys
import tempfile
import wave
import array

RATE = 48000
SPEAKERS = [
    {"key": "ana", "name": "Ana Lima", "voice": "en-us+f3"},
    {"key": "ben", "name": "Ben Carter", "voice": "en-gb+m4"},
]
# (speaker, pause before in seconds, text)
SCRIPT = [
    ("ana", 0.6, "Welcome to the design review. We have two topics today."),
    ("ben", 0.6, "First, the search page loads in three seconds. That is too slow."),
    ("ana", 0.5, "Agreed. Can you profile it and send me the results by Friday?"),
    ("ben", 0.5, "Yes, I will send the profile by Friday."),
    ("ana", 0.6, "Second, the new logo is approved. Thanks, everyone."),
]


def run(cmd):
    res = subprocess.run(cmd, capture_output=True)
    if res.returncode != 0:
        sys.exit(f"make.py: {' '.join(cmd)} failed: {res.stderr.decode(errors='replace')}")


def speak(voice, text, path):
    raw = path + ".raw.wav"
    run(["espeak-ng", "-v", voice, "-s", "150", "-w", raw, text])
    # 48 kHz mono 16-bit, leading/trailing silence trimmed, peak at -3 dBFS.
    run(["sox", raw, "-r", str(RATE), "-c", "1", "-b", "16", path,
         "silence", "1", "0.02", "0.5%", "reverse", "silence", "1", "0.02", "0.5%", "reverse", "gain", "-n", "-3"])
    with wave.open(path) as w:
        return array.array("h", w.readframes(w.getnframes()))


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    with tempfile.TemporaryDirectory() as tmp:
        clips, t = [], 0.0
        for i, (key, pause, text) in enumerate(SCRIPT):
            voice = next(s["voice"] for s in SPEAKERS if s["key"] == key)
            samples = speak(voice, text, os.path.join(tmp, f"{i}.wav"))
            start = t + pause
            clips.append((key, int(start * RATE), samples, text))
            t = start + len(samples) / RATE
        total = int((t + 1.0) * RATE)
        utterances = []
        for s in SPEAKERS:
            track = array.array("h", bytes(2 * total))
            for key, at, samples, text in clips:
                if key == s["key"]:
                    track[at:at + len(samples)] = samples
            wav = os.path.join(tmp, s["key"] + ".wav")
            with wave.open(wav, "wb") as w:
                w.setnchannels(1)
                w.setsampwidth(2)
                w.setframerate(RATE)
                w.writeframes(track.tobytes())
            run(["opusenc", "--quiet", "--bitrate", "24", "--framesize", "20", wav, os.path.join(here, s["key"] + ".opus")])
        for key, at, samples, text in clips:
            utterances.append({"speaker": key, "start_ms": at * 1000 // RATE,
                               "end_ms": (at + len(samples)) * 1000 // RATE, "text": text})
    reference = {"meeting": "Design review (sample)", "duration_ms": total * 1000 // RATE,
                 "speakers": [{"key": s["key"], "name": s["name"]} for s in SPEAKERS],
                 "utterances": utterances}
    with open(os.path.join(here, "reference.json"), "w") as f:
        json.dump(reference, f, indent=2)
        f.write("\n")
    print(f"wrote {len(SPEAKERS)} tracks, {total / RATE:.1f} s")


if __name__ == "__main__":
    main()
