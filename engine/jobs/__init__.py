"""Long computations as jobs: a frozen request, progress as a generator, cancel, resume from the file."""
