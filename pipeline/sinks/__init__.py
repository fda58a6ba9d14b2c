"""Sinks: annotated MP4, MOTChallenge txt, JSON Lines, image dumps, live window; one annotation stage per stream draws for the picture sinks."""

from pipeline.sinks.annotation import AnnotationStage, Picture
from pipeline.sinks.base import Sink, SinkRunner
from pipeline.sinks.files import JsonlSink, MotSink
from pipeline.sinks.video import ImageSink, VideoSink, WindowSink

__all__ = ["AnnotationStage", "Picture", "Sink", "SinkRunner", "JsonlSink", "MotSink", "ImageSink", "VideoSink", "WindowSink"]
