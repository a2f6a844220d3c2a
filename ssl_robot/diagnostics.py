"""A node's health as diagnostic statuses (no rclpy): what it publishes on /diagnostics.

Every node keeps a `NodeHealth`: the inputs it expects (arrivals counted over a sliding
window against an expected rate), drops by cause, a latency window, and sections of its
own (the inference node's model, the labeller's labels, the recorder's bag, the
trainer's rounds) whose key-values and level the node sets. `NodeHealth.statuses` turns
them into `Status` records, one per section, in the form of diagnostic_msgs'
DiagnosticStatus (level OK/WARN/ERROR/STALE, name, message, hardware_id, key-values);
`ssl_robot.nodes._diagnostics` publishes them at about 1 Hz.

Times are seconds of a monotonic clock the caller reads (the node's steady clock): a
rate is how fast the node receives, which is what a slow or silent input means to it.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
import hashlib
from pathlib import Path

import numpy as np

from ssl_robot.errors import ConfigError

#: diagnostic_msgs/DiagnosticStatus levels.
OK, WARN, ERROR, STALE = 0, 1, 2, 3
LEVEL_NAMES = {OK: 'OK', WARN: 'WARN', ERROR: 'ERROR', STALE: 'STALE'}


@dataclass(frozen=True)
class Status:
    """One diagnostic status: a section of a node's health."""

    level: int
    name: str
    message: str
    hardware_id: str
    values: tuple[tuple[str, str], ...]

    def value(self, key: str) -> str:
        """The value of `key` ('' when absent)."""
        return dict(self.values).get(key, '')


def _text(value: object) -> str:
    if isinstance(value, bool):
        return 'true' if value else 'false'
    if isinstance(value, float):
        return f'{value:.4g}'
    return str(value)


class InputRate:
    """Arrivals of one input over a sliding window, checked against its expected rate.

    Args:
        topic: The input's topic (as the node subscribes it).
        expected_hz: Its nominal rate; 0 checks only that it is not silent.
        window_s: Length of the sliding window the rate is measured over.
        slow_fraction: WARN below this fraction of `expected_hz`.
    """

    def __init__(self, topic: str, *, expected_hz: float = 0.0, window_s: float = 5.0,
                 slow_fraction: float = 0.7) -> None:
        self.topic = topic
        self.expected_hz = float(expected_hz)
        self.window_s = float(window_s)
        self.slow_fraction = float(slow_fraction)
        self.count = 0
        self._times: deque[float] = deque()
        self._since: float | None = None

    def arrived(self, now_s: float) -> None:
        """Count one message received at `now_s`."""
        self.count += 1
        if self._since is None:
            self._since = now_s
        self._times.append(now_s)
        self._trim(now_s)

    def _trim(self, now_s: float) -> None:
        while self._times and self._times[0] < now_s - self.window_s:
            self._times.popleft()

    def rate_hz(self, now_s: float) -> float:
        """Messages per second over the window (over the time watched, when shorter)."""
        if self._since is None:
            self._since = now_s
        self._trim(now_s)
        span = min(self.window_s, now_s - self._since)
        if span <= 0:
            return 0.0
        return len(self._times) / span

    def check(self, now_s: float) -> tuple[int, str]:
        """WARN when silent over the window or slower than expected, else OK."""
        rate = self.rate_hz(now_s)
        if not self._times:
            return WARN, f'{self.topic} silent' + (
                f' for {self.window_s:g} s' if self.count else ' (nothing received yet)')
        if self.expected_hz > 0 and rate < self.slow_fraction * self.expected_hz:
            return WARN, f'{self.topic} at {rate:.1f} Hz, expected {self.expected_hz:g} Hz'
        return OK, ''


class LatencyWindow:
    """The last `size` latencies (s): median and 99th percentile."""

    def __init__(self, size: int = 500) -> None:
        self._values: deque[float] = deque(maxlen=size)

    def add(self, seconds: float) -> None:
        self._values.append(float(seconds))

    def __len__(self) -> int:
        return len(self._values)

    def percentiles_ms(self) -> tuple[float, float]:
        """(median, p99) in milliseconds; (nan, nan) before any sample."""
        if not self._values:
            return float('nan'), float('nan')
        values = np.asarray(self._values) * 1e3
        return float(np.median(values)), float(np.percentile(values, 99))


class Growth:
    """Whether a level (a queue's backlog) rose at each of its last `ticks` samples."""

    def __init__(self, ticks: int = 3) -> None:
        self._values: deque[float] = deque(maxlen=ticks + 1)

    def add(self, value: float) -> bool:
        """Record a sample; True when the level has grown at every one of the last ticks."""
        self._values.append(float(value))
        values = list(self._values)
        return len(values) == self._values.maxlen and all(
            b > a for a, b in zip(values, values[1:]))


@dataclass
class Section:
    """A part of a node's health that the node fills in (level, message, key-values)."""

    level: int = OK
    message: str = ''
    values: dict[str, object] = field(default_factory=dict)

    def set(self, level: int, message: str = '', **values: object) -> None:
        """Set the level and message, and update key-values."""
        self.level, self.message = level, message
        self.values.update(values)


class NodeHealth:
    """Everything one node reports on /diagnostics (see the module docstring).

    Args:
        node: The node's name; statuses are named '<node>: <section>'.
        hardware_id: What the statuses are about (the robot, a model file), '' for none.
    """

    def __init__(self, node: str, *, hardware_id: str = '') -> None:
        self.node = node
        self.hardware_id = hardware_id
        self.inputs: dict[str, InputRate] = {}
        self.drops: dict[str, int] = {}
        self.latency = LatencyWindow()
        self.sections: dict[str, Section] = {}

    def watch_input(self, topic: str, *, expected_hz: float = 0.0,
                    window_s: float = 5.0) -> InputRate:
        """Start counting an input topic (a configured input of the node)."""
        self.inputs[topic] = InputRate(topic, expected_hz=expected_hz, window_s=window_s)
        return self.inputs[topic]

    def arrived(self, topic: str, now_s: float) -> None:
        """Count a message of a watched input (ignored for one not watched)."""
        rate = self.inputs.get(topic)
        if rate is not None:
            rate.arrived(now_s)

    def dropped(self, cause: str, count: int = 1) -> None:
        """Count `count` messages dropped for `cause`."""
        self.drops[cause] = self.drops.get(cause, 0) + count

    def section(self, name: str) -> Section:
        """A section of the node's own (created on first use)."""
        return self.sections.setdefault(name, Section())

    def statuses(self, now_s: float) -> list[Status]:
        """The node's statuses now: inputs, drops and latency, then its own sections."""
        out = []
        if self.inputs:
            level, problems, values = OK, [], []
            for topic, rate in self.inputs.items():
                lvl, text = rate.check(now_s)
                level = max(level, lvl)
                if text:
                    problems.append(text)
                values += [(f'{topic} rate_hz', _text(rate.rate_hz(now_s))),
                           (f'{topic} expected_hz', _text(rate.expected_hz)),
                           (f'{topic} received', str(rate.count))]
            out.append(Status(level, f'{self.node}: inputs',
                              '; '.join(problems) or 'every input at its rate',
                              self.hardware_id, tuple(values)))
        values = [(f'dropped {cause}', str(n)) for cause, n in sorted(self.drops.items())]
        values.append(('dropped total', str(sum(self.drops.values()))))
        if len(self.latency):
            median, p99 = self.latency.percentiles_ms()
            values += [('latency median_ms', _text(median)), ('latency p99_ms', _text(p99)),
                       ('latency samples', str(len(self.latency)))]
        message = (f'{sum(self.drops.values())} dropped' if self.drops else 'nothing dropped')
        out.append(Status(OK, f'{self.node}: drops and latency', message, self.hardware_id,
                          tuple(values)))
        for name, sec in self.sections.items():
            out.append(Status(sec.level, f'{self.node}: {name}', sec.message or 'ok',
                              self.hardware_id,
                              tuple((k, _text(v)) for k, v in sec.values.items())))
        return out


def model_id(path: Path | str) -> str:
    """A short id of a model file: the first 12 hex digits of its SHA-256."""
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 20), b''):
            digest.update(block)
    return digest.hexdigest()[:12]


def provider_check(requested: list[str], in_use: list[str]) -> tuple[int, str]:
    """WARN when the model runs on another onnxruntime provider than the first requested."""
    if requested and in_use and in_use[0] != requested[0]:
        return WARN, f'runs on {in_use[0]}, not the requested {requested[0]}'
    return OK, f'runs on {in_use[0] if in_use else "?"}'


def training_progress(metrics_csv: Path | str) -> dict[str, float]:
    """Progress of a training run from its metrics.csv (one row per epoch).

    Returns:
        {'epoch', 'step', 'steps_per_s' (of the last epoch), and each validation metric
        ('val_*') of the last epoch}; {} when the file is missing or has no row yet.
    """
    import csv
    try:
        with open(metrics_csv, newline='') as f:
            rows = list(csv.DictReader(f))
    except OSError:
        return {}
    if not rows:
        return {}

    def number(row: dict[str, str], key: str) -> float:
        try:
            return float(row.get(key) or 'nan')
        except ValueError:
            return float('nan')

    last = rows[-1]
    steps = number(last, 'step') - (number(rows[-2], 'step') if len(rows) > 1 else 0.0)
    seconds = number(last, 'seconds')
    out = {'epoch': number(last, 'epoch'), 'step': number(last, 'step'),
           'steps_per_s': steps / seconds if seconds > 0 else float('nan')}
    out.update((k, number(last, k)) for k in last if k.startswith('val_'))
    return out


def parse_expected_rates(items: list[str]) -> dict[str, float]:
    """The `expected_rates_hz` parameter ('TOPIC=HZ' items) as {topic: Hz}.

    Topics are the generic names the nodes use (remapped like every topic); '' items are
    skipped (an empty string array).

    Raises:
        ConfigError: For an item that is not TOPIC=HZ with HZ >= 0.
    """
    rates: dict[str, float] = {}
    for item in items:
        if not item:
            continue
        topic, sep, value = item.partition('=')
        try:
            hz = float(value)
        except ValueError:
            hz = -1.0
        if not sep or not topic or hz < 0:
            raise ConfigError(f'expected_rates_hz item {item!r}: use TOPIC=HZ, e.g. image_raw=30')
        rates[topic] = hz
    return rates
