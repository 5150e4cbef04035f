"""How the settings of profiler.collect.settings and profiler.daemon.config appear as the
command line's flags (type, choices, range, default, help), and the flags every command
touching the store shares."""

from __future__ import annotations

import functools
from dataclasses import MISSING, fields

import click

from profiler.collect.settings import CHOICES, LIMITS, flags
from profiler.daemon.config import DaemonConfig, config_keys

SETTINGS = {f.name: f for f in fields(DaemonConfig)}  # run, check and daemon settings


def setting_options(*names: str, daemon: bool = False):
    """The flags of settings as profiler.collect.settings and profiler.daemon.config declare
    them: type, choices, range, default and help. The daemon's default to None, so that
    a config file's values stand unless a flag is given."""
    def decorate(command):
        for name in reversed(names):
            command = click.option(*flags(name), name, **_option(SETTINGS[name], daemon))(command)
        return command
    return decorate


def _option(f, daemon: bool) -> dict:
    multiple, default = f.type.startswith("list"), [] if f.default_factory is not MISSING else f.default
    unset = default in (None, [], False)
    options = {"help": f.metadata["help"], "multiple": multiple, "is_flag": f.type == "bool",
               "default": None if daemon else () if multiple else default,
               "show_default": not (daemon or unset)}
    if f.name in CHOICES:
        options["type"] = click.Choice(list(CHOICES[f.name]))
    elif f.name in LIMITS:
        options["type"] = (click.FloatRange if f.type == "float" else click.IntRange)(*LIMITS[f.name])
    shown = f.metadata["shown"] or (None if unset else default)
    if daemon and shown:
        options["help"] += f" [{shown}]"
    return options


def store_options(json: bool = True, state_dir: bool = False, host: bool = False):
    """--db PATH|URL on every command that touches the store; --json where it prints
    results; --state-dir where the daemon's files matter; --host where a fleet's runs are listed."""
    options = [click.option("--db", "db_path", type=click.Path(dir_okay=False, path_type=str), metavar="PATH|URL", help=(
        "SQLite file, or a postgresql:// URL for a fleet's server (default: $XPROF_DB, else "
        "xprof.db in the user data directory)."))]
    if host:
        options.append(click.option("--host", "host", default=None, metavar="NAME",
                                    help="Only this host's runs (see `xprof runs` for the hosts)."))
    if state_dir:
        options.append(click.option("--state-dir", type=click.Path(file_okay=False), help=(
            "Pid, log and status files (default: $XPROF_STATE_DIR, else the user state directory).")))
    if json:
        options.append(click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts."))
    return lambda command: functools.reduce(lambda decorated, option: option(decorated), options, command)


def daemon_options(command):
    """The options `daemon run` and `daemon start` share: every key of a config file,
    which fills what the flags leave unset."""
    names = [f.name for f in fields(DaemonConfig) if f.name in config_keys()]  # run settings first
    for option in reversed([
        click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None,
                     help="TOML file of the options below ([daemon] table; flags win)."),
        setting_options(*names, daemon=True), store_options(json=False, state_dir=True),
    ]):
        command = option(command)
    return command
