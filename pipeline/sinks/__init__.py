"""Sinks: annotated MP4, MOTChallenge txt, JSON Lines, image dumps, live window."""

from pipeline.sinks.base import Sink, SinkRunner
from pipeline.sinks.files import JsonlSink, MotSink
from pipeline.sinks.video import ImageSink, VideoSink, WindowSink

__all__ = ["Sink", "SinkRunner", "JsonlSink", "MotSink", "ImageSink", "VideoSink", "WindowSink"]
