"""Training: the loop, schedules, optimizers, checkpoints."""
