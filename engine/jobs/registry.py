"""Every job kind by name: the job for a request, and the request that resumes a file of any kind."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from engine.errors import LandscapeError
from engine.io.store import settings_of
from engine.jobs import hessian, path, surface
from engine.jobs.base import Job

_RESUMERS = {surface.SurfaceJob.kind: surface.resume_request, path.PathJob.kind: path.resume_request,
             hessian.HessianJob.kind: hessian.resume_request}
_JOBS_BY_REQUEST: dict[type, type[Job]] = {surface.SurfaceRequest: surface.SurfaceJob, path.PathRequest: path.PathJob,
                                           hessian.HessianRequest: hessian.HessianJob}


def job_for(request: Any) -> Job:
    """A new job for a request of any kind."""
    try:
        return _JOBS_BY_REQUEST[type(request)](request)
    except KeyError:
        raise LandscapeError(f"internal: no job kind takes a {type(request).__name__}") from None


def resume_request(path: str | Path, **options: Any) -> Any:
    """The request that finishes ``path``, chosen by the file's ``kind`` attribute."""
    attrs = settings_of(path)
    kind = str(attrs.get("kind", ""))
    if attrs.get("format") != "landscape":
        raise LandscapeError(f"{path} is not a Landscape result file; only those can be resumed")
    if kind not in _RESUMERS:
        raise LandscapeError(f"{path} holds a '{kind}' result, which this Landscape cannot resume: upgrade")
    return _RESUMERS[kind](path, **options)
