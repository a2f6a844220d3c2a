"""`bag_player` node: plays a bag onto its topics with /clock, for replay in simulation.

    bag_player --ros-args -p bag:=bags/world_99 -p rate:=2.0 -p loop:=true

Reads mcap, sqlite3 and ROS 1 bags through `ssl_robot.bags.reader.BagReader` (ROS 1 messages
are converted to their ROS 2 Kilted counterparts; a type with none, or whose rclpy
class is not installed, is skipped and counted). Messages are published as raw CDR.
Bag time drives /clock (rosgraph_msgs/Clock, at `clock_rate` Hz of wall time), paced by
the node's steady clock at `rate`; with `loop` the bag restarts and /clock jumps back,
which is logged. The player itself never uses sim time for pacing.
"""
from __future__ import annotations

import json
import sys
import threading

from rcl_interfaces.msg import ParameterDescriptor
from rclpy.clock import Clock, ClockType
from rclpy.duration import Duration
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from rclpy.qos_overriding_options import QoSOverridingOptions
from rosgraph_msgs.msg import Clock as ClockMsg
from std_msgs.msg import String

from ssl_robot.bags.reader import BagError, BagReader, kilted_cdr
from ssl_robot.diagnostics import ERROR, NodeHealth, OK
from ssl_robot.nodes._diagnostics import DiagnosticsPublisher
from ssl_robot.nodes._run import run_node
from ssl_robot.nodes.msgtypes import message_class


def _describe(text: str) -> ParameterDescriptor:
    return ParameterDescriptor(description=text)


class BagPlayer(Node):
    """Publishes a bag's messages at their bag times (scaled by `rate`) and /clock."""

    def __init__(self) -> None:
        super().__init__('bag_player')
        p = self.declare_parameter
        p('bag', '', _describe('bag to play: rosbag2 directory, .mcap, .db3 or ROS 1 .bag'))
        p('rate', 1.0, _describe('playback speed factor (like ros2 bag play -r)'))
        p('loop', False, _describe('restart at the end; /clock jumps back to the start'))
        p('start_offset', 0.0, _describe('seconds of bag time to skip at the start'))
        p('publish_clock', True, _describe('publish bag time on /clock'))
        p('clock_rate', 100.0, _describe('/clock messages per wall second'))
        p('topics', [''], _describe('topics to play (empty: all)'))
        p('remap_prefix', '', _describe('prefix for every played topic, e.g. /replay'))
        p('delay', 0.5, _describe('wall seconds to wait before playing, so that subscribers '
                                  'discover the publishers'))
        p('wait_for_subscribers', 0, _describe('before playing, wait until every played topic '
                                               'has this many subscribers (0: do not wait)'))
        p('wait_for_topics', [''], _describe(
            'before playing, wait until each TOPIC:N entry (a played topic as published, '
            'e.g. /image_raw:3) has at least N subscribers, e.g. until an inference node '
            'that subscribes only once active is up'))
        p('wait_timeout', 60.0, _describe('wall seconds the waits for subscribers may take; '
                                          'then play anyway, with a warning (0: no limit)'))
        p('reliable', True, _describe('publish reliably (sensor-data subscribers still match)'))
        gp = self.get_parameter
        self.bag_path = gp('bag').value
        self.rate = float(gp('rate').value)
        if not self.bag_path:
            raise BagError('bag_player: parameter bag is empty; give -p bag:=PATH')
        if self.rate <= 0:
            raise BagError(f'bag_player: rate must be > 0, got {self.rate}')
        self.loop = bool(gp('loop').value)
        self.offset_ns = int(float(gp('start_offset').value) * 1e9)
        self.publish_clock = bool(gp('publish_clock').value)
        self.clock_period_ns = int(1e9 / max(1e-3, float(gp('clock_rate').value)))
        self.topic_filter = [t for t in gp('topics').value if t] or None
        self.prefix = gp('remap_prefix').value.rstrip('/')
        reliability = (ReliabilityPolicy.RELIABLE if gp('reliable').value
                       else ReliabilityPolicy.BEST_EFFORT)
        self.qos = QoSProfile(depth=100, reliability=reliability)

        self.steady = Clock(clock_type=ClockType.STEADY_TIME)
        self.stop_event = threading.Event()
        self.clock_pub = self.create_publisher(ClockMsg, '/clock', 10)
        self.status_pub = self.create_publisher(String, 'bag_player/status', 10)
        self.publishers_by_topic: dict[str, object] = {}
        self.skipped: dict[str, int] = {}
        self.published: dict[str, int] = {}
        self.loops = 0
        self.error: str | None = None
        self.health = NodeHealth('bag_player', hardware_id=str(self.bag_path))
        self.diagnostics = DiagnosticsPublisher(self, self.health, update=self._update_health)
        with BagReader(self.bag_path) as bag:  # fail early, on the main thread
            self.topic_types = dict(bag.topics)
            self.counts = bag.message_counts
        for topic, msgtype in self.topic_types.items():
            if self.topic_filter is None or topic in self.topic_filter:
                self._publisher(topic, msgtype)
        self.delay_ns = int(float(gp('delay').value) * 1e9)
        self.wait_for_subscribers = int(gp('wait_for_subscribers').value)
        self.wait_for_topics = self._topic_counts([t for t in gp('wait_for_topics').value if t])
        self.wait_timeout_ns = int(max(0.0, float(gp('wait_timeout').value)) * 1e9)
        self.thread = threading.Thread(target=self._play_guarded, name='player', daemon=True)
        self.thread.start()

    def _publisher(self, topic: str, msgtype: str) -> object | None:
        """The publisher of a bag topic; None (counted, logged once) when its type is missing."""
        if topic in self.publishers_by_topic:
            return self.publishers_by_topic[topic]
        cls = message_class(msgtype)
        pub = None
        if cls is None:
            self.get_logger().warning(f'{topic}: type {msgtype} not available here; skipped')
        else:
            pub = self.create_publisher(
                cls, f'{self.prefix}{topic}', self.qos,
                qos_overriding_options=QoSOverridingOptions.with_default_policies())
        self.publishers_by_topic[topic] = pub
        return pub

    def _topic_counts(self, entries: list[str]) -> dict[str, int]:
        """`wait_for_topics` as {published topic: subscribers}; BagError for a bad entry."""
        played = {p.topic_name: p for p in self.publishers_by_topic.values() if p is not None}
        counts = {}
        for entry in entries:
            topic, sep, count = entry.rpartition(':')
            try:
                n = int(count)
            except ValueError:
                n = -1
            if not sep or not topic or n < 1:
                raise BagError(f'bag_player: wait_for_topics entry {entry!r}: expected TOPIC:N '
                               'with N >= 1')
            name = self.resolve_topic_name(topic)
            if name not in played:
                raise BagError(f'bag_player: wait_for_topics names {name}, which this bag does '
                               f'not play (played: {", ".join(sorted(played)) or "none"})')
            counts[name] = n
        return counts

    def _wait_for_subscribers(self) -> bool:
        """Wait for `wait_for_subscribers` and `wait_for_topics`; False when asked to stop.

        After `wait_timeout` it plays anyway and says which topics still lacked subscribers.
        """
        played = {p.topic_name: p for p in self.publishers_by_topic.values() if p is not None}
        wanted = {name: self.wait_for_subscribers for name in played
                  if self.wait_for_subscribers > 0}
        for name, n in self.wait_for_topics.items():
            wanted[name] = max(n, wanted.get(name, 0))
        if not wanted:
            return True
        self.get_logger().info('waiting for subscribers: ' + ', '.join(
            f'{name} {n}' for name, n in sorted(wanted.items())))
        deadline = self.steady.now().nanoseconds + self.wait_timeout_ns
        while True:
            short = {name: played[name].get_subscription_count() for name, n in wanted.items()
                     if played[name].get_subscription_count() < n}
            if not short:
                return True
            if self.wait_timeout_ns and self.steady.now().nanoseconds >= deadline:
                self.get_logger().warning(
                    f'playing after {self.wait_timeout_ns / 1e9:.0f} s (wait_timeout) without '
                    'the subscribers asked for: ' + ', '.join(
                        f'{name} has {have} of {wanted[name]}'
                        for name, have in sorted(short.items())))
                return True
            if self.stop_event.wait(0.05):
                return False

    def _wait_until(self, target_ns: int) -> bool:
        """Sleep until steady time `target_ns`; False when asked to stop."""
        while True:
            left = target_ns - self.steady.now().nanoseconds
            if left <= 0:
                return True
            if self.stop_event.wait(left / 1e9):
                return False

    def _tick_clock(self, bag_ns: int) -> None:
        msg = ClockMsg()
        msg.clock.sec, msg.clock.nanosec = divmod(int(bag_ns), 1_000_000_000)
        self.clock_pub.publish(msg)

    def _play_guarded(self) -> None:
        try:
            self._play()
        except Exception as exc:  # noqa: BLE001 - reported by main(), never a silent stop
            # A publish that fails because SIGINT/SIGTERM already shut the context down
            # is the requested stop, not a playback failure.
            if self.context.ok() and not self.stop_event.is_set():
                self.error = str(exc)
        finally:
            self.stop_event.set()

    def _play(self) -> None:
        # The subscribers first, then `delay`: a subscriber in the graph may not have
        # matched this publisher yet, and what is sent before it has is lost to it.
        if not self._wait_for_subscribers():
            return
        if not self._wait_until(self.steady.now().nanoseconds + self.delay_ns):
            return
        with BagReader(self.bag_path) as bag:
            if not sum(bag.message_counts.values()):
                self.get_logger().warning(f'{self.bag_path}: bag has no messages')
                return
            start_ns = bag.start_time_ns + self.offset_ns
            self.get_logger().info(
                f'playing {self.bag_path} from {self.offset_ns / 1e9:.3f} s at rate '
                f'{self.rate} ({sum(self.counts.values())} messages, loop={self.loop})')
            last_bag_ns = start_ns
            while True:
                if self.loops:
                    self.get_logger().info(
                        f'loop {self.loops}: bag time jumps back from {last_bag_ns / 1e9:.3f} '
                        f'to {start_ns / 1e9:.3f} s')
                last_bag_ns = self._play_once(bag, start_ns)
                if last_bag_ns is None or not self.loop:
                    break
                self.loops += 1
        # Like ros2 bag play --wait-for-all-acked: reliable subscribers get the tail too.
        for pub in [*self.publishers_by_topic.values(), self.clock_pub]:
            if pub is not None and not pub.wait_for_all_acked(Duration(seconds=5)):
                self.get_logger().warning(f'{pub.topic_name}: not every subscriber '
                                          'acknowledged the last messages')
        self.get_logger().info(f'done: {json.dumps(self.summary())}')

    def _play_once(self, bag: BagReader, start_ns: int) -> int | None:
        """Play the bag once from `start_ns`; the last bag time, None when stopped."""
        wall0 = self.steady.now().nanoseconds
        next_clock = wall0
        bag_ns = start_ns
        if self.publish_clock:
            self._tick_clock(start_ns)
        for conn, bag_ns, raw in bag.raw_messages(self.topic_filter, start_ns=start_ns):
            due = wall0 + int((bag_ns - start_ns) / self.rate)
            # Tick /clock at clock_rate while waiting for the message's time.
            while self.publish_clock and next_clock < due:
                if not self._wait_until(next_clock):
                    return None
                wall = self.steady.now().nanoseconds
                # Never past the coming message: /clock must not run backwards.
                self._tick_clock(min(bag_ns, start_ns + int((wall - wall0) * self.rate)))
                next_clock += self.clock_period_ns
            if not self._wait_until(due):
                return None
            if self.publish_clock:
                self._tick_clock(bag_ns)
            self._publish(bag, conn, raw)
        return bag_ns

    def _publish(self, bag: BagReader, conn: object, raw: bytes) -> None:
        topic = conn.topic
        pub = self._publisher(topic, conn.msgtype)
        if pub is None:
            self.skipped[topic] = self.skipped.get(topic, 0) + 1
            return
        try:
            data = kilted_cdr(bag, conn, raw)
        except (KeyError, AttributeError, TypeError, ValueError) as exc:
            if topic not in self.skipped:
                self.get_logger().warning(f'{topic}: cannot convert {conn.msgtype} to ROS 2 '
                                          f'({exc}); skipped')
            self.skipped[topic] = self.skipped.get(topic, 0) + 1
            return
        try:
            pub.publish(bytes(data))
        except Exception as exc:  # noqa: BLE001 - counted and logged, playback goes on
            if topic not in self.skipped:
                self.get_logger().error(f'{topic}: publish failed ({exc}); skipped')
            self.skipped[topic] = self.skipped.get(topic, 0) + 1
            return
        self.published[topic] = self.published.get(topic, 0) + 1

    def _update_health(self, now_s: float) -> None:
        """/diagnostics: messages published per topic, loops, skipped, a playback error."""
        published = dict(self.published)
        self.health.drops.update(self.skipped)
        self.health.section('playback').set(
            ERROR if self.error else OK, self.error or
            f'{sum(published.values())} of {sum(self.counts.values())} messages published',
            loops=self.loops, **{f'published {t}': n for t, n in published.items()})

    def summary(self) -> dict:
        """Published and skipped counts per topic, and loops done."""
        return {'published': self.published, 'skipped': self.skipped, 'loops': self.loops}

    def stop(self) -> None:
        """Stop playing (the thread ends at its next wait)."""
        self.stop_event.set()
        self.thread.join(timeout=5)


def main(args: list[str] | None = None) -> int:
    """Play the bag given by the `bag` parameter; exit when done (or on SIGINT/SIGTERM)."""
    def exit_code(node: BagPlayer) -> int:
        if node.error:
            node.get_logger().error(f'playback failed: {node.error}')
            return 1
        return 0
    return run_node('bag_player', BagPlayer, args=args, startup_errors=(BagError,),
                    done=lambda node: node.stop_event.is_set(), finish=BagPlayer.stop,
                    exit_code=exit_code)


if __name__ == '__main__':
    sys.exit(main())
