"""sagemakerhpo: ListTrainingJobsForTuningJob served from Redis sorted sets."""

__version__ = "0.1.0"
