"""What commands do around their one library call: open the store, show the result (JSON
or a renderer), categorize events, profile with a progress bar."""

from __future__ import annotations

import importlib

import click


def store(db_path, create=False, host=None, one_host=None):
    """The store of `--db`, reading only `host`'s runs where --host names one. A command
    that takes "the latest run" of a configuration takes one host's on a store of several
    hosts, never one host's against another's: `one_host="latest"` (diff --workload) this
    host's where it has runs, else asks for --host; `"here"` (claims) this host's always."""
    from profiler.processes import host_name
    from profiler.store import open_store

    opened = open_store(db_path, create, notice=lambda text: click.echo(text, err=True))
    if one_host and not host and len(known := opened.hosts()) > 1:
        if one_host == "here":
            opened.only_host = host_name()
            return opened
        if host_name() not in known:
            raise click.ClickException(f"{opened.path} holds runs of {len(known)} hosts ({', '.join(known)}) "
                                       "and none of this one: name one with --host")
        host = host_name()
    if host:
        known = opened.hosts()
        if host not in known:
            raise click.ClickException(f"no runs of host {host!r} in {opened.path} ("
                                       + (f"hosts: {', '.join(known)})" if known else
                                          "no run in it names a host; `xprof import --host` names an import's)"))
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
