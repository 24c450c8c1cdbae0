"""Version 0.1's import path for surface jobs, kept for scripts written against it; see :mod:`engine.jobs.surface`."""

from engine.jobs.surface import SurfaceJob, SurfaceProgress, SurfaceRequest, line_request, resume_request

__all__ = ["SurfaceJob", "SurfaceProgress", "SurfaceRequest", "line_request", "resume_request"]
