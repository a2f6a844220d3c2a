"""Bags (no rclpy): the one reader, the one writer, the recorder's split writer, recovery.

Modules: `typestore` (the leaf: Kilted typestore, `BagError`, stamps, CDR header), `reader`
(`BagReader`: rosbag2 mcap/sqlite3 and ROS 1, salvaging unfinished recordings), `writer`
(`BagWriter`), `split` (`SplitBagWriter`, behind the recorder), `recovery` (reindex and
salvage), `fastcdr` (reading the few fields labelling needs straight from CDR bytes).
Import from the submodules; this package imports nothing, so importing `BagError` is light.
"""
