"""The process around a run: multi-host start-up (:mod:`.distributed`) and JAX's persistent
compilation cache (:mod:`.compile_cache`)."""
