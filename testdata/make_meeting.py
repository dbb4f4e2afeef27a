#!/usr/bin/env python3
"""Make a synthetic test meeting, one track per speaker, from a folder's script.json.

Usage: python3 testdata/make_meeting.py DIR   (needs espeak-ng, sox and opusenc from opus-tools)

script.json holds the meeting's title, its speakers (key, display name, espeak-ng voice, and
optionally words per minute, default 150) and its lines as [speaker, pause in seconds after the
previous line ends (negative: they talk over its end), text]. Writes <speaker>.opus (Ogg/Opus,
48 kHz mono, 24 kbit/s, 20 ms frames; every track the full length of the meeting, silent where
that person does not speak, as an SFU delivers them) and reference.json (who said what, when)
into DIR. The audio is synthesised locally, so the output is ours to ship (CC0).
"""
import array
import json
import os
import subprocess
import sys
import tempfile
import wave

RATE = 48000


def run(cmd):
    res = subprocess.run(cmd, capture_output=True)
    if res.returncode != 0:
        sys.exit(f"make_meeting.py: {' '.join(cmd)} failed: {res.stderr.decode(errors='replace')}")


def speak(voice, wpm, text, path):
    raw = path + ".raw.wav"
    run(["espeak-ng", "-v", voice, "-s", str(wpm), "-w", raw, text])
    # 48 kHz mono 16-bit, leading/trailing silence trimmed, peak at -3 dBFS.
    run(["sox", raw, "-r", str(RATE), "-c", "1", "-b", "16", path,
         "silence", "1", "0.02", "0.5%", "reverse", "silence", "1", "0.02", "0.5%", "reverse", "gain", "-n", "-3"])
    with wave.open(path) as w:
        return array.array("h", w.readframes(w.getnframes()))


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    out = sys.argv[1]
    with open(os.path.join(out, "script.json")) as f:
        spec = json.load(f)
    speakers = {s["key"]: s for s in spec["speakers"]}
    with tempfile.TemporaryDirectory() as tmp:
        # `t` is where the latest line so far ends; an overlapping line does not move it back.
        clips, t = [], 0.0
        for i, (key, pause, text) in enumerate(spec["script"]):
            s = speakers[key]
            samples = speak(s["voice"], s.get("wpm", 150), text, os.path.join(tmp, f"{i}.wav"))
            start = max(t + pause, 0.0)
            clips.append((key, int(start * RATE), samples, text))
            t = max(t, start + len(samples) / RATE)
        total = int((t + 1.0) * RATE)
        for key in speakers:
            track = array.array("h", bytes(2 * total))
            for k, at, samples, _ in clips:
                if k == key:
                    track[at:at + len(samples)] = samples
            wav = os.path.join(tmp, key + ".wav")
            with wave.open(wav, "wb") as w:
                w.setnchannels(1)
                w.setsampwidth(2)
                w.setframerate(RATE)
                w.writeframes(track.tobytes())
            run(["opusenc", "--quiet", "--bitrate", "24", "--framesize", "20", wav,
                 os.path.join(out, key + ".opus")])
    utterances = [{"speaker": k, "start_ms": at * 1000 // RATE,
                   "end_ms": (at + len(samples)) * 1000 // RATE, "text": text}
                  for k, at, samples, text in clips]
    reference = {"meeting": spec["meeting"], "duration_ms": total * 1000 // RATE,
                 "speakers": [{"key": s["key"], "name": s["name"]} for s in spec["speakers"]],
                 "utterances": utterances}
    with open(os.path.join(out, "reference.json"), "w") as f:
        json.dump(reference, f, indent=2)
        f.write("\n")
    print(f"wrote {len(speakers)} tracks, {total / RATE:.1f} s")


if __name__ == "__main__":
    main()
