"""Speed and memory measurements of the reference (`nox -s perf`)."""
