"""Publish a node's `NodeHealth` (ssl_robot.diagnostics) on /diagnostics at about 1 Hz.

The standard topic and message (diagnostic_msgs/DiagnosticArray) that rqt_robot_monitor
and Foxglove read. The timer runs on the steady clock, so a node whose /clock stopped (a
replay that ended, a paused simulator) still reports.
"""
from __future__ import annotations

import time
from typing import Callable

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from rclpy.qos import QoSProfile

from ssl_robot.diagnostics import NodeHealth, Status


def to_message(statuses: list[Status]) -> list[DiagnosticStatus]:
    """diagnostic_msgs/DiagnosticStatus messages of the core's statuses."""
    return [DiagnosticStatus(level=bytes([s.level]), name=s.name, message=s.message,
                             hardware_id=s.hardware_id,
                             values=[KeyValue(key=k, value=v) for k, v in s.values])
            for s in statuses]


class DiagnosticsPublisher:
    """Publishes `health` on /diagnostics every `period_s` (steady clock).

    Args:
        node: The node that publishes.
        health: What it publishes.
        update: Called with the steady time (s) before each publication, to refresh the
            node's sections from its counters.
        period_s: Seconds between publications.
    """

    def __init__(self, node: Node, health: NodeHealth, *,
                 update: Callable[[float], None] | None = None, period_s: float = 1.0) -> None:
        self.node = node
        self.health = health
        self._update = update
        self.steady = Clock(clock_type=ClockType.STEADY_TIME)
        self._pub = node.create_publisher(DiagnosticArray, '/diagnostics', QoSProfile(depth=10))
        self._timer = node.create_timer(period_s, self.publish, clock=self.steady)

    def now_s(self) -> float:
        """Steady time in seconds (what arrivals are counted in).

        CLOCK_MONOTONIC, the clock of rclpy's STEADY_TIME, read without an rclpy Time
        (nodes call this per message).
        """
        return time.monotonic()

    def publish(self) -> None:
        now = self.now_s()
        if self._update is not None:
            self._update(now)
        msg = DiagnosticArray(status=to_message(self.health.statuses(now)))
        msg.header.stamp = self.node.get_clock().now().to_msg()
        self._pub.publish(msg)
