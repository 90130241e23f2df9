"""The benchmark results (suite.run's dict) as tables: plain text for the terminal, Markdown for
bench/RESULTS.md. Every figure printed is read from the results, none is computed elsewhere."""

import json
import os
import sys
import tempfile

from absl import app
from absl import flags

from everywear_tf import fileio
from everywear_tf import spec

from bench import paths

_ROWS = spec.MODULES + ('tryon',)


def _table(header, rows, markdown):
    cells = [[str(c) for c in header]] + [[str(c) for c in row] for row in rows]
    if markdown:
        lines = ['| ' + ' | '.join(cells[0]) + ' |', '|' + '---|' * len(header)]
        lines += ['| ' + ' | '.join(row) + ' |' for row in cells[1:]]
        return '\n'.join(lines)
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = ['  '.join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in cells]
    lines.insert(1, '  '.join('-' * w for w in widths))
    return '\n'.join(lines)


def _ms(seconds):
    return f'{seconds * 1e3:.1f}'


def _ratio(a, b):
    return f'{a / b:.2f}'


def cpu_line(results):
    """The CPU, its ISA and whether bfloat16 is native, as the run recorded them (runs before
    hardware.py: the model and the AVX512_BF16 flag only)."""
    m = results['machine']
    line = m.get('cpu_line') or (f"CPU: {m['cpu']}, {m['cores']} cores; AVX512_BF16: "
                                 f"{m['avx512_bf16']} (ISA not recorded)")
    if m.get('onednn_isa'):
        line += f"; oneDNN dispatches to: {m['onednn_isa']}"
    return line


def native_bfloat16(results):
    """Whether the run's CPU computes bfloat16 natively (older runs: their AVX512_BF16 flag)."""
    m = results['machine']
    return m.get('native_bfloat16', m.get('avx512_bf16', False))


def machine(results, markdown=False):
    m, peak, settings = results['machine'], results['peak'], results['settings']
    rows = [('date', m['date']), ('cpu', cpu_line(results)),
            ('tensorflow', m['tensorflow']), ('oneDNN', m['onednn']),
            ('load average (1, 5, 15 min) at start', ', '.join(f'{v:.2f}'
                                                               for v in m['load_average'])),
            ('load average at end', ', '.join(f'{v:.2f}' for v in m.get('load_average_end', []))),
            (f"peak float32 (matmul {peak['size']}³), start / end",
             f"{peak['gflops']:.1f} / {results['peak_end']['gflops']:.1f} GFLOP/s"),
            ('networks', f"{results['settings']['config']} config, random weights"),
            ('runs', f"{settings['runs']} at batch 1, {settings['batch_runs']} at batch "
                     f"{settings['batch']}"),
            ('garbage collector', 'the set-up frozen out of it (gc.freeze): REST figures not '
             "comparable" if settings.get('freeze_heap') else "as in any caller's process"),
            ('benchmark wall time', f"{results['seconds']:.0f} s")]
    return _table(('', ''), rows, markdown)


def latency(results, markdown=False):
    """Median and p90 at batch 1, throughput at the batch size, per module and path."""
    header = ['module'] + [f'{p} median / p90 ms' for p in results['paths']]
    rows, throughput = [], []
    for module in _ROWS:
        row, items = [module], [module]
        for modules in results['paths'].values():
            if 'error' in modules:
                row.append('failed')
                items.append('failed')
                continue
            stats = modules[module]['latency']
            row.append(f"{_ms(stats['median'])} / {_ms(stats['p90'])}")
            items.append(f"{modules[module]['throughput']['items_per_second']:.1f}")
        rows.append(row)
        throughput.append(items)
    batch = results['settings']['batch']
    errors = [f'{p}: {m["error"]}' for p, m in results['paths'].items() if 'error' in m]
    text = (_table(header, rows, markdown) + f'\n\nThroughput at batch {batch} (items/s)\n\n'
            + _table(['module'] + list(results['paths']), throughput, markdown))
    return text + ''.join(f'\n\n{e}' for e in errors)


def efficiency(results, markdown=False):
    peak = results['peak']['gflops']
    batch = results['settings']['batch']
    header = ['module', 'GFLOP / item', 'path', 'GFLOP/s batch 1', 'peak then', 'of peak',
              f'GFLOP/s batch {batch}', 'peak then', 'of peak']
    rows = []
    for module in _ROWS:
        for path in (paths.KERAS, paths.SAVED_MODEL):
            e = results['efficiency'].get(path, {}).get(module)
            if e is None:
                continue
            rows.append((module, f"{results['flops'][module]['total'] / 1e9:.2f}", path,
                         f"{e['gflops_batch1']:.1f}", f"{e.get('peak_batch1', peak):.0f}",
                         f"{e['fraction_of_peak_batch1']:.0%}", f"{e['gflops_batch']:.1f}",
                         f"{e.get('peak_batch', peak):.0f}", f"{e['fraction_of_peak_batch']:.0%}"))
    if 'peak_by_module' in results:
        note = (f'Peak: the best {results["peak"]["size"]}³ float32 matmul timed in turn with '
                f'each module\'s calls ("peak then"); {peak:.1f} GFLOP/s on its own at the '
                f'start, {results["peak_end"]["gflops"]:.1f} at the end.')
    else:  # runs before the peak was timed alongside: the one measured at the start
        note = (f'Peak: the best {results["peak"]["size"]}³ float32 matmul at the start of the '
                f'run, {peak:.1f} GFLOP/s ({results["peak_end"]["gflops"]:.1f} at the end).')
    return note + '\n\n' + _table(header, rows, markdown)


def serving(results, markdown=False):
    """Served latency over in-process latency, and the bytes each request moves."""
    keras = results['paths'].get(paths.KERAS)
    if keras is None or 'error' in keras:
        return 'needs the keras path'
    rows = []
    for module in _ROWS:
        row = [module, _ms(keras[module]['latency']['median'])]
        for path in paths.SERVED:
            served = results['paths'].get(path)
            if served is None or 'error' in served:
                row += ['-', '-']
                continue
            median = served[module]['latency']['median']
            row += [_ms(median), _ratio(median, keras[module]['latency']['median'])]
        rows.append(row)
    text = _table(['module', 'keras ms', 'gRPC ms', 'gRPC / keras', 'REST ms', 'REST / keras'],
                  rows, markdown)
    sizes = results.get('payload_bytes')
    if sizes:
        size_rows = [(m, f"{s['grpc_request'] / 1e3:.0f}", f"{s['grpc_response'] / 1e3:.0f}",
                      f"{s['rest_request'] / 1e3:.0f}", f"{s['rest_response'] / 1e3:.0f}")
                     for m, s in sizes.items()]
        text += '\n\nPayload per request at batch 1 (kB)\n\n' + _table(
                ['module', 'gRPC request', 'gRPC response', 'REST request', 'REST response'],
                size_rows, markdown)
    return text


def outfit(results, markdown=False):
    if 'outfit' not in results:
        return 'outfit not measured'
    out = {p: v for p, v in results['outfit'].items() if isinstance(v, dict) and 'total' in v}
    parts = [p for p in next(iter(out.values())) if p != 'runs']
    rows = [[part] + [_ms(out[path][part]) for path in out] for part in parts]
    text = _table(['part (ms)'] + list(out), rows, markdown)
    functions = results['outfit'].get('functions', {}).get(paths.KERAS)
    if functions:
        text += ('\n\nPre- and postprocessing by function, in process (ms, both garments)\n\n'
                 + _table(('function', 'ms'), [(name, _ms(s)) for name, s in functions.items()],
                          markdown))
    if 'photo_size' in results['outfit']:
        height, width = results['outfit']['photo_size']
        text += f'\n\nPhoto: {height}×{width}'
    if 'equals_pipeline' in results['outfit']:
        text += ('\n\nStage by stage equals pipeline.outfit bit for bit: ' + ', '.join(
                f'{path} {equal}' for path, equal in results['outfit']['equals_pipeline'].items()))
    if 'served_equals_in_process' in results['outfit']:
        text += ('\n\nServed outfit equals the in-process one bit for bit: '
                 f"{results['outfit']['served_equals_in_process']}")
    return text


def bfloat16_slowdown(results, module, path=paths.KERAS):
    """bfloat16's median batch-1 time over float32's for ``module`` on ``path``, or None."""
    timings = results.get('bfloat16', {}).get('timings', {}).get(path)
    f32 = results['paths'].get(path)
    if not timings or not f32 or 'error' in f32 or module not in timings:
        return None
    return timings[module]['latency']['median'] / f32[module]['latency']['median']


def not_native(results, module):
    """'not native on this CPU: N× slower, not recommended' (N measured in the run), or None
    where the run's CPU has native bfloat16 (or bfloat16 was not timed)."""
    if native_bfloat16(results):
        return None
    slowdown = bfloat16_slowdown(results, module)
    if slowdown is None:
        return None
    if slowdown < 1:  # a network too small for the emulation to cost (the lite configs)
        return f'not native on this CPU: {slowdown:.2f}× the float32 time here, not recommended'
    return f'not native on this CPU: {slowdown:.1f}× slower, not recommended'


def bfloat16(results, markdown=False):
    b = results.get('bfloat16')
    if not b:
        return 'bfloat16 variant not measured'
    if not native_bfloat16(results):
        rows = [(module, not_native(results, module) or '-') for module in _ROWS]
        text = ('No native bfloat16 on this CPU (no avx512_bf16 / amx_bf16): the variant is '
                'not recommended here; its timings stay in the JSON.\n\n'
                + _table(('module', 'bfloat16 in process, batch 1'), rows, markdown))
        return text + _bfloat16_differences(b, markdown)
    rows = []
    for module in _ROWS:
        row = [module]
        for path, timings in b['timings'].items():
            if path not in results['paths'] or 'error' in results['paths'][path]:
                row += ['-', '-', '-']
                continue
            f32 = results['paths'][path][module]['latency']['median']
            bf = timings[module]['latency']['median']
            f32_items = results['paths'][path][module]['throughput']['items_per_second']
            bf_items = timings[module]['throughput']['items_per_second']
            row += [f'{_ms(f32)} → {_ms(bf)}', _ratio(f32, bf), _ratio(bf_items, f32_items)]
        rows.append(row)
    header = ['module']
    for path in b['timings']:
        header += [f'{path} ms f32 → bf16', 'speed-up b1',
                   f"speed-up b{results['settings']['batch']}"]
    return _table(header, rows, markdown) + _bfloat16_differences(b, markdown)


def _bfloat16_differences(b, markdown):
    diff_rows = []
    random = (f"random {b.get('random_config', 'full')} weights", b['random_weights'])
    for name, comparison in list(b['demo_set'].items()) + [random]:
        m = comparison['modules']
        diff_rows.append((name, f"{comparison['tryon']['min_ssim']:.4f}",
                          f"{comparison['tryon']['max_abs']:.0f}",
                          f"{comparison['tryon']['mean_abs']:.3f}",
                          f"{m[spec.GMM][spec.THETA]['max_abs']:.4f}",
                          f"{m[spec.GMM][spec.WARPED_CLOTH]['max_abs']:.0f}",
                          f"{m[spec.EDM][spec.COARSE]['max_abs']:.0f}",
                          f"{m[spec.RM][spec.TRYON]['max_abs']:.0f}"))
    return '\n\nbfloat16 against float32 (uint8 levels unless said)\n\n' + _table(
            ('weights / inputs', 'try-on SSIM', 'try-on max abs', 'try-on mean abs',
             'GMM theta max abs', 'GMM warped max', 'EDM coarse max', 'RM tryon max'),
            diff_rows, markdown)


def originals(results, markdown=False):
    """The originals timed in turn with our SavedModels (--originals_dir), or why not."""
    o = results.get('originals')
    if not o:
        return ('not measured: pass --originals_dir=<dir holding your VITON and cp-vton '
                'checkouts> to time them in the same run')
    rows = []
    for name, entry in o.get('timed', {}).items():
        for key in ('batch1', 'batch'):
            pair = entry[key]
            rows.append((name, pair['batch'], _ms(pair['ours']['median']),
                         _ms(pair['theirs']['median']),
                         _ratio(pair['ours']['median'], pair['theirs']['median']),
                         _ratio(pair['ours']['min'], pair['theirs']['min'])))
    text = _table(('module vs original', 'batch', 'ours ms (SavedModel)', 'original ms',
                   'ours / original (median)', '(best)'), rows, markdown)
    for name, entry in o.get('timed', {}).items():
        text += (f"\n\n{name}: {entry['source']}; outputs against ours: tryon max "
                 f"{entry['max_abs_tryon']:g} uint8 levels, alpha max {entry['max_abs_alpha']:g}")
    for name, why in o.get('skipped', {}).items():
        text += f'\n\n{name}: skipped: {why}'
    return text


def optimisations(results, markdown=False):
    o = results.get('optimisations')
    if not o:
        return 'optimisations not measured'
    rows = []
    for batch, pair in o['grid_sample'].items():
        rows.append((f'grid_sample 256×192×3, {batch}', _ms(pair['before']['median']),
                     _ms(pair['after']['median']),
                     _ratio(pair['before']['median'], pair['after']['median'])))
    g = o['gmm_graph_ops']
    rows.append(('GMM serving function, batch 1', _ms(g['before']['latency']['median']),
                 _ms(g['after']['latency']['median']),
                 _ratio(g['before']['latency']['median'], g['after']['latency']['median'])))
    batch = results['settings']['batch']
    rows.append((f'GMM serving function, batch {batch} (per call)',
                 _ms(g['before']['throughput']['median']), _ms(g['after']['throughput']['median']),
                 _ratio(g['before']['throughput']['median'], g['after']['throughput']['median'])))
    for module, pair in o.get('grpc_transport', {}).get('before', {}).items():
        after = o['grpc_transport']['after'][module]
        for label, key in (('batch 1', 'latency'), (f'batch {batch}', 'throughput')):
            rows.append((f'{module} over gRPC, {label}', _ms(pair[key]['median']),
                         _ms(after[key]['median']),
                         _ratio(pair[key]['median'], after[key]['median'])))
    served = o.get('grpc_tryon')
    if served:
        for label, key in (('batch 1', 'latency'), (f'batch {batch}', 'throughput')):
            rows.append((f'try-on over gRPC, GMM and EDM together, {label}',
                         _ms(served['before'][key]['median']), _ms(served['after'][key]['median']),
                         _ratio(served['before'][key]['median'], served['after'][key]['median'])))
    rest = o.get('rest_gmm')
    if rest:
        rows.append(('gmm over REST, batch 1 (collector paused in the client)',
                     _ms(rest['before']['median']), _ms(rest['after']['median']),
                     _ratio(rest['before']['median'], rest['after']['median'])))
    codec = o.get('gmm_response_codec')
    if codec:
        for step in ('encode', 'decode'):
            rows.append((f'GMM batch-1 response, {step}', _ms(codec['before'][step]['median']),
                         _ms(codec['after'][step]['median']),
                         _ratio(codec['before'][step]['median'], codec['after'][step]['median'])))
    xla = results['paths'].get(paths.KERAS_XLA)
    if xla and 'error' not in xla and paths.KERAS in results['paths']:
        for module in _ROWS:
            before = results['paths'][paths.KERAS][module]['latency']['median']
            after = xla[module]['latency']['median']
            rows.append((f'{module}: XLA (jit_compile) in process, batch 1', _ms(before),
                         _ms(after), _ratio(before, after)))
    text = _table(('change', 'before ms', 'after ms', 'speed-up'), rows, markdown)
    return text + (f"\n\nGMM outputs with the previous sampler and with the new one differ by at "
                   f"most {g['max_abs_difference']:g}")


SECTIONS = (('Machine', machine), ('Latency (batch 1) and throughput', latency),
            ('FLOPs and efficiency', efficiency), ('Serving overhead and payloads', serving),
            ('Outfit (top + pants on the demo photo), median split', outfit),
            ('bfloat16 variant', bfloat16), ('The originals, timed in turn', originals),
            ('Optimisations, before and after', optimisations))


def text(results, markdown=False):
    """Every section, titled, each opening with the CPU line (what its figures hold on)."""
    heading = '### ' if markdown else '== '
    line = cpu_line(results)
    return '\n\n'.join(f'{heading}{title}\n\n{line}\n\n{section(results, markdown)}'
                       for title, section in SECTIONS) + '\n'


def summary(results, markdown=True):
    """The headline figures as a list: each module's median latency per path, its share of the
    measured peak, the serving overhead, the outfit's time and the bfloat16 speed-up."""
    lines = []
    keras = results['paths'].get(paths.KERAS, {})
    peak = results['peak']['gflops']
    for module in _ROWS:
        if module not in keras:
            continue
        medians = ', '.join(f"{path} {_ms(m[module]['latency']['median'])} ms"
                            for path, m in results['paths'].items() if 'error' not in m)
        e = results['efficiency'][paths.KERAS][module]
        line = (f"{module}: median latency at batch 1 {medians}; "
                f"{results['flops'][module]['total'] / 1e9:.2f} GFLOP, "
                f"{e['gflops_batch1']:.1f} GFLOP/s in process = {e['fraction_of_peak_batch1']:.0%}"
                f" of the {e.get('peak_batch1', peak):.0f} GFLOP/s peak measured "
                f"{'alongside' if 'peak_by_module' in results else 'at the start'} "
                f"({e['fraction_of_peak_batch']:.0%} at batch {results['settings']['batch']})")
        grpc_path = results['paths'].get(paths.GRPC)
        if grpc_path and 'error' not in grpc_path:
            ratio = grpc_path[module]['latency']['median'] / keras[module]['latency']['median']
            line += f'; serving overhead gRPC / in process {ratio:.2f}×'
        bf = results.get('bfloat16', {}).get('timings', {}).get(paths.KERAS)
        if bf and not native_bfloat16(results):
            line += f'; bfloat16: {not_native(results, module)}'
        elif bf:
            speed_up = keras[module]['latency']['median'] / bf[module]['latency']['median']
            line += f'; bfloat16 speed-up in process {speed_up:.2f}×'
        lines.append(line)
    for path, split in results.get('outfit', {}).items():
        if isinstance(split, dict) and 'total' in split:
            lines.append(f"whole outfit (pants + t-shirt) via {path}: {_ms(split['total'])} ms")
    for name, entry in results.get('originals', {}).get('timed', {}).items():
        lines.append(f"{name}: ours / original " + ', '.join(
                f"{_ratio(entry[k]['ours']['median'], entry[k]['theirs']['median'])}× at batch "
                f"{entry[k]['batch']}" for k in ('batch1', 'batch')) + ' (median, timed in turn)')
    bullet = '- ' if markdown else '  '
    return '\n'.join([bullet + cpu_line(results)] + [bullet + line for line in lines])


def begin_marker(block):
    """The line opening a generated block of RESULTS.md (``<!-- figures <block>: ... -->``)."""
    return f'<!-- figures {block}:'


def end_marker(block):
    """The line closing it."""
    return f'<!-- end of figures {block} -->'


def replace_block(document, block, content):
    """``document`` with its ``block`` (markers included) replaced by ``content``, which must
    carry the markers itself; ValueError naming the markers when the document has no such block.
    """
    begin, end = begin_marker(block), end_marker(block)
    if begin not in document or end not in document:
        raise ValueError(f'no block {block!r} ({begin} ... {end})')
    start = document.index(begin)
    stop = document.index(end) + len(end)
    return document[:start] + content + document[stop:]


def write_block(document_path, block, module, results, source, body):
    """Replaces the generated ``block`` of ``document_path`` (RESULTS.md) with ``body`` under a
    header naming ``python -m <module>``, ``source`` and the command that made ``results``;
    ``absl.app.UsageError`` naming the file when it has no such block. Written atomically."""
    with open(document_path) as f:
        document = f.read()
    content = '\n\n'.join([
            f'{begin_marker(block)} generated by python -m {module} from {source}; do not edit -->',
            f"Command: `{results.get('command', f'python -m {module}')}`",
            body.rstrip(),
            end_marker(block)])
    try:
        document = replace_block(document, block, content)
    except ValueError as e:
        raise app.UsageError(f'{document_path}: {e}') from None
    fileio.atomic_write_bytes(document_path, document.encode())


def save_run(results, output, text, write_block=None, results_md=None, block=None,
             markdown=True):
    """What every benchmark binary does with a finished run: its JSON at ``output`` (and, with
    ``markdown``, the table beside it as .md), written atomically; the table printed; with
    ``results_md``, its block of that document rewritten by ``write_block``."""
    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    fileio.atomic_write_bytes(output, (json.dumps(results, indent=1) + '\n').encode())
    if markdown:
        fileio.atomic_write_bytes(os.path.splitext(output)[0] + '.md',
                                  text(results, markdown=True).encode())
    print(text(results))
    print(f'wrote {output}')
    if results_md:
        write_block(results_md, results, output)
        print(f'wrote the table into block {block!r} of {results_md}')


COMMITTED_RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'RESULTS.md')

# The flags Outputs defines belong to the binary that makes it (its --help lists them).
flags.disclaim_key_flags()


class Outputs:
    """The outputs a benchmark binary shares with the others: its ``--output``, ``--results_md``
    and ``--input`` flags (defined when it is made, so make one per binary, at import), its
    block of RESULTS.md, --quick figures kept out of the committed RESULTS.md, and the run
    saved (``save_run``). ``text(results, markdown=False)`` is the binary's table."""

    def __init__(self, module, block, full_output, text, markdown=True):
        self.module, self.block, self.full_output = module, block, full_output
        self.text, self.markdown = text, markdown
        beside = ', and a .md of the table beside it' if markdown else ''
        self._output = flags.DEFINE_string(
                'output', None, f'Where the JSON goes (default: {full_output}{beside}; with '
                f'--quick, {os.path.basename(full_output)} in a new temporary directory).')
        self._results_md = flags.DEFINE_string(
                'results_md', None, 'Also write the table into this Markdown file '
                f'(bench/RESULTS.md), between its markers <!-- figures {block}: ... --> and '
                f'<!-- end of figures {block} -->.')
        self._input = flags.DEFINE_string('input', None, 'Measure nothing: print (and write '
                                          'with --results_md) the table of this JSON.')

    def write_block(self, document_path, results, source):
        """Replaces this binary's block of ``document_path`` (RESULTS.md) with the table."""
        write_block(document_path, self.block, self.module, results, source,
                    self.text(results, markdown=True))

    def replay(self):
        """With ``--input``: prints that JSON's table (and writes its block with
        ``--results_md``) and returns True; otherwise False."""
        if not self._input.value:
            return False
        with open(self._input.value) as f:
            results = json.load(f)
        print(self.text(results))
        if self._results_md.value:
            self.write_block(self._results_md.value, results, self._input.value)
        return True

    def refuse_quick_into_committed(self, quick):
        """absl.app.UsageError when a --quick run would write into the committed RESULTS.md."""
        if quick and self._results_md.value and os.path.realpath(
                self._results_md.value) == os.path.realpath(COMMITTED_RESULTS):
            raise app.UsageError('--quick figures do not go into the committed bench/RESULTS.md')

    def save(self, results, quick):
        """Records the command (``python -m <module>`` and this process's arguments) in
        ``results`` and saves the run: at ``--output``, else the full run's path, or with
        ``quick`` a new temporary directory."""
        results['command'] = ' '.join([f'python -m {self.module}'] + sys.argv[1:])
        output = self._output.value or (self.full_output if not quick else os.path.join(
                tempfile.mkdtemp(prefix='everywear-bench-quick-'),
                os.path.basename(self.full_output)))
        save_run(results, output, self.text, self.write_block, self._results_md.value,
                 self.block, markdown=self.markdown)
