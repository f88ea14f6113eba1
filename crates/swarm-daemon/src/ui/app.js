// filled in by the UI step
