"""The embedded default kept alive: what `make run` does every minute without Redis or Celery.

- `demo_roll`: the simulated demo markets rolled forward to now, step by step, so they behave
  like live markets (new bars and liquidations every five minutes);
- `scheduler`: an in-process thread (started by `manage.py serve`, which `make run` uses) that
  every LIQSITE_SCHEDULER_SECONDS rolls the demo forward, ingests tracked real markets, recomputes
  the maps whose data moved and checks the alerts not yet checked on the current maps (so a fresh
  alert fires within a minute). With REDIS_URL set, Celery beat and workers do this instead.
"""
