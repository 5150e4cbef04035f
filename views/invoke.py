"""What commands do around their one library call: open the store, show the result (JSON
or a renderer), categorize events, profile with a progress bar."""

from __future__ import annotations

import importlib

import click


def store(db_path, create=False, host=None):
    """The store of `--db`, reading only `host`'s runs where --host names one."""
    from profiler.store import open_store

    opened = open_store(db_path, create, notice=lambda text: click.echo(text, err=True))
    if host:
        known = opened.hosts()
        if host not in known:
            raise click.ClickException(f"no runs of host {host!r} in {opened.path} "
                                       f"(hosts: {', '.join(known) or 'none yet'})")
        opened.only_host = host
    return opened


def show(result, as_json: bool, renderer: str, *args) -> None:
    """JSON for scripts, else `renderer` ("terminal:print_diff": a function of views.terminal,
    loaded only then, as rich is; views.lines draws without rich)."""
    from views.lines import emit_json

    module, function = renderer.split(":")
    if as_json:
        emit_json(result)
    else:
        getattr(importlib.import_module(f"views.{module}"), function)(result, *args)


def classify_event(event) -> str:
    """The taxonomy's category of an event, loaded at the first call (after an import forks)."""
    from analysis.taxonomy import classify_event as classify

    return classify(event)


def profile_with_progress(store, settings, requests, quiet):
    """profile() of `requests` (with settings' telemetry), with a progress bar on a
    terminal; Ctrl-C exits 130."""
    from profiler.collect.orchestrate import profile
    from views.terminal import RunProgress

    try:
        with RunProgress(len(requests), settings.repeats, quiet=quiet) as progress:
            return profile(store, settings, classify_event, progress.update, requests=requests)
    except KeyboardInterrupt:
        error = click.ClickException("interrupted: the cut run is stored as interrupted")
        error.exit_code = 130
        raise error from None
