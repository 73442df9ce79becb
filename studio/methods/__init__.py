"""Training methods: one module each (model + loss + step), driven by studio.train."""
