"""The API package layout, so that `server.jobs.recording_job` imports (benchmarks only)."""
