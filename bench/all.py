r"""Benchmarks every module and the whole try-on, prints the tables and writes the JSON.

    python -m bench.all                       # full configs: the figures in bench/RESULTS.md
    python -m bench.all --quick               # a smoke run of every path and table (~35 s)
    python -m bench.all --output=bench/results/all.json --markdown=bench/results/all.md
    python -m bench.all --paths=keras,grpc --nobfloat16 --nooutfit --nooptimisations
    python -m bench.all --originals_dir=~/src   # also time ~/src/VITON's stage 2, in turn

Run from the repository root. Figures are of this machine at this moment; the JSON records the
machine, the load average and the measured peak beside them. The full run writes
bench/results/all.json unless told otherwise; ``--quick`` writes into a new temporary directory
unless ``--output`` is given, so it never replaces the committed results.
"""

import dataclasses
import json
import os
import sys
import tempfile

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')  # keep TensorFlow's start-up chatter quiet

from absl import app  # noqa: E402
from absl import flags  # noqa: E402
from absl import logging  # noqa: E402

from everywear_tf import fileio  # noqa: E402

from bench import paths  # noqa: E402
from bench import report  # noqa: E402
from bench import suite  # noqa: E402

FULL_OUTPUT = 'bench/results/all.json'

_QUICK = flags.DEFINE_bool(
        'quick', False, 'A smoke run of every path and table: lite networks of one category '
        'exported once (float32; bfloat16 in process only), 3 timed calls, one outfit (about '
        '35 s on 2 idle cores; figures not comparable with a full run\'s). Writes into a '
        'temporary directory unless --output is given.')
_OUTPUT = flags.DEFINE_string('output', None, f'Where the JSON goes (default: {FULL_OUTPUT}; '
                              'with --quick, all.json in a new temporary directory).')
_MARKDOWN = flags.DEFINE_string('markdown', None, 'Also write the tables as Markdown here.')
_RUNS = flags.DEFINE_integer('runs', None, 'Latency runs at batch 1 (default: 20, quick 3).')
_PATHS = flags.DEFINE_list('paths', list(paths.ALL), 'Paths to measure.')
_BFLOAT16 = flags.DEFINE_bool('bfloat16', True, 'Measure the bfloat16 variant too.')
_OUTFIT = flags.DEFINE_bool('outfit', True, "Measure a whole outfit's split.")
_OPTIMISATIONS = flags.DEFINE_bool('optimisations', True, 'Time the replaced code beside the new.')
_ORIGINALS_DIR = flags.DEFINE_string(
        'originals_dir', None, 'A directory holding your checkouts of the originals '
        '(VITON = xthan/VITON, cp-vton = sergeywong/cp-vton): their networks are timed in turn '
        'with ours in the same run (random weights, ours loaded into theirs). Without it they '
        'are skipped with a message. Nothing of theirs is copied.')
_WORK_DIR = flags.DEFINE_string('work_dir', None, 'Keep the exported models here (default: a '
                                'temporary directory, removed at the end).')


def _output_path():
    if _OUTPUT.value:
        return _OUTPUT.value
    if _QUICK.value:
        return os.path.join(tempfile.mkdtemp(prefix='everywear-bench-quick-'), 'all.json')
    return FULL_OUTPUT


def main(argv):
    """Runs the benchmark the flags describe; returns the exit status."""
    if len(argv) > 1:
        raise app.UsageError(f'unexpected arguments: {argv[1:]}')
    unknown = sorted(set(_PATHS.value) - set(paths.ALL))
    if unknown:
        raise app.UsageError(f'unknown paths {unknown}; known: {list(paths.ALL)}')
    logging.set_verbosity(logging.WARNING)  # SavedModel writing logs every asset at INFO
    settings = suite.QUICK if _QUICK.value else suite.Settings()
    overrides = {'paths': tuple(_PATHS.value), 'bfloat16': _BFLOAT16.value,
                 'outfit': _OUTFIT.value, 'optimisations': _OPTIMISATIONS.value}
    if _RUNS.value:
        overrides['runs'] = _RUNS.value
    if _ORIGINALS_DIR.value:
        originals_dir = os.path.expanduser(_ORIGINALS_DIR.value)
        if not os.path.isdir(originals_dir):
            print(f'all: error: {originals_dir}: --originals_dir is not a directory',
                  file=sys.stderr)
            return 1
        overrides['originals_dir'] = originals_dir
    else:
        print('bench: the originals are skipped: pass --originals_dir=<dir holding VITON/ and '
              'cp-vton/> to time them in the same run', file=sys.stderr)
    settings = dataclasses.replace(settings, **overrides)
    results = suite.run(settings, log=lambda m: print(f'bench: {m}', file=sys.stderr, flush=True),
                        work_dir=_WORK_DIR.value)
    results['command'] = ' '.join(['python -m bench.all'] + sys.argv[1:])
    output = _output_path()
    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    fileio.atomic_write_bytes(output, (json.dumps(results, indent=1) + "\n").encode())
    if _MARKDOWN.value:
        fileio.atomic_write_bytes(_MARKDOWN.value, report.text(results, markdown=True).encode())
    print(report.text(results))
    print(f'wrote {output}')
    return 0


if __name__ == '__main__':
    app.run(lambda argv: sys.exit(main(argv)))
