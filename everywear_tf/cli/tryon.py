r"""everywear-tryon: a person photo wearing a top and/or pants, at the photo's own resolution.

  everywear-tryon --demo --output=tryon.png
  everywear-tryon --person=me.jpg --top=shirt.jpg --bottom=trousers.jpg --output=me_dressed.png
  everywear-tryon --person=me.jpg --pose=me_keypoints.json --parse=me_parse.png \
      --top=shirt.jpg --output=me_dressed.png      # your own pose and parse instead
  everywear-tryon ... --save_pose=me_keypoints.json --save_parse=me_parse.png
  everywear-tryon ... --server=localhost:8500      # through TF Serving instead of in process
  everywear-tryon ... --server=localhost:8500 --model_label=canary   # the canary versions

Without --pose or --parse, the photo front end estimates them from the photo (in process it
needs the frontend extra: pip install 'everywear-tf[frontend]'); --save_pose and --save_parse
write what was estimated (OpenPose JSON, LIP palette PNG) to correct and reuse.

Networks come from --weights_root (default: the bundled demo weights, trained on drawn data:
they show the pipeline working, not photo-quality results). Through a server or from exported
SavedModels, the versions labelled stable run (--model_label, --model_version to choose), and
which versions those are is printed first. Output paths, the weights root or export and the
server are checked before any work.
"""

import sys

from everywear_tf.cli import app as command

command.quiet_tensorflow()

from absl import app  # noqa: E402
from absl import flags  # noqa: E402

from everywear_tf import demo  # noqa: E402
from everywear_tf import demo_weights  # noqa: E402
from everywear_tf import errors  # noqa: E402
from everywear_tf import spec  # noqa: E402
from everywear_tf.data import images  # noqa: E402
from everywear_tf.data import keypoints as keypoint_files  # noqa: E402
from everywear_tf.data import parsing  # noqa: E402
from everywear_tf.inference import pipeline  # noqa: E402

_DEMO = flags.DEFINE_bool('demo', False, 'Use the bundled 720×720 photo, t-shirt and pants '
                         '(pose and parse estimated from the photo unless --pose/--parse).')
_PERSON = flags.DEFINE_string('person', None, 'Person photo (any size).')
_POSE = flags.DEFINE_string('pose', None, 'Its keypoints: OpenPose JSON, VITON .mat/.pkl or '
                            'Everywear pose JSON (default: estimated from the photo).')
_PARSE = flags.DEFINE_string('parse', None, 'Its LIP label map (PNG or VITON .mat), photo size '
                             '(default: estimated from the photo).')
_SAVE_POSE = flags.DEFINE_string('save_pose', None, 'Write the keypoints used (OpenPose JSON).')
_SAVE_PARSE = flags.DEFINE_string('save_parse', None, 'Write the parse used (LIP palette PNG).')
_TOP = flags.DEFINE_string('top', None, 'Upper garment photo on white.')
_TOP_MASK = flags.DEFINE_string('top_mask', None, 'Its mask (default: computed).')
_TOP_CATEGORY = flags.DEFINE_enum('top_category', spec.MEN_TSHIRTS,
                                  list(spec.UPPER_CATEGORIES), 'What the top is.')
_BOTTOM = flags.DEFINE_string('bottom', None, 'Pants photo on white.')
_BOTTOM_MASK = flags.DEFINE_string('bottom_mask', None, 'Its mask (default: computed).')
_OUTPUT = flags.DEFINE_string('output', 'tryon.png', 'Where the dressed photo goes (PNG).')
_WEIGHTS_ROOT = flags.DEFINE_string('weights_root', demo_weights.DIRECTORY,
                                    'Directory of <module>_<category>/ weights directories.')
_SAVED_MODELS = flags.DEFINE_string('saved_models', None, 'Run exported SavedModels in process '
                                     'from this TF Serving base path (<name>/<version>/) '
                                     'instead of --weights_root.')
_SERVER = flags.DEFINE_string('server', None, 'TF Serving gRPC host:port (default: in process).')
flags.mark_flags_as_mutual_exclusive(['saved_models', 'server'])
command.define_model_flags()
command.define_photo_flags()


def _inputs():
    if _DEMO.value:
        return (demo.PHOTO, _POSE.value, _PARSE.value, demo.TSHIRT, demo.TSHIRT_MASK,
                demo.PANTS, demo.PANTS_MASK)
    if not _PERSON.value:
        raise app.UsageError('pass --person (or --demo)')
    if not (_TOP.value or _BOTTOM.value):
        raise app.UsageError('pass --top and/or --bottom')
    return (_PERSON.value, _POSE.value, _PARSE.value, _TOP.value, _TOP_MASK.value,
            _BOTTOM.value, _BOTTOM_MASK.value)


def _pose_and_parse(backend, photo, person, pose_path, parse_path, max_pixels):
    """The given pose and parse, the front end's estimate for what is not given."""
    parse = (parsing.read_parse(parse_path, image_size=photo.shape[:2], max_pixels=max_pixels)
             if parse_path else None)
    keypoints = (keypoint_files.read_keypoints(pose_path, image_size=photo.shape[:2])
                 if pose_path else None)
    if parse is None or keypoints is None:
        estimate = pipeline.front_end_for(backend)(photo, person)
        parse = estimate.parse if parse is None else parse
        keypoints = estimate.keypoints if keypoints is None else keypoints
    return keypoints, parse


def _garment(category, path, mask_path, options):
    if not path:
        return None
    return (category, *images.read_garment(path, mask_path, max_pixels=options['max_pixels'],
                                           orientation=options['orientation']))


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f'unexpected arguments: {argv[1:]}')
    if not _OUTPUT.value.lower().endswith('.png'):
        raise app.UsageError(f'--output must name a .png file, got {_OUTPUT.value!r}')
    selection = command.model_selection()
    options = command.photo_options()
    person, pose, parse_path, top, top_mask, bottom, bottom_mask = _inputs()
    try:
        for path in (_OUTPUT.value, _SAVE_POSE.value, _SAVE_PARSE.value):
            if path:  # before any work: a bad output path is known now, not after the try-on
                command.check_output_path(path)
        photo = images.read_image(person, max_pixels=options['max_pixels'],
                                  orientation=options['orientation'])
        garments = {'top': _garment(_TOP_CATEGORY.value, top, top_mask, options),
                    'bottom': _garment(spec.MEN_PANTS, bottom, bottom_mask, options)}
        backend = pipeline.make_backend(_WEIGHTS_ROOT.value, _SAVED_MODELS.value,
                                         _SERVER.value, **selection)
        backend.check([garment[0] for garment in garments.values() if garment])
        keypoints, parse = _pose_and_parse(backend, photo, person, pose, parse_path,
                                           options['max_pixels'])
        final, _ = pipeline.outfit(backend, photo, parse, keypoints, **garments,
                                   pose_path=pose or person, relit=options['relit'])
        if _SAVE_POSE.value:
            keypoint_files.write_openpose_json(_SAVE_POSE.value, keypoints)
        if _SAVE_PARSE.value:
            parsing.write_parse_png(_SAVE_PARSE.value, parse)
        images.write_png(_OUTPUT.value, final)
    except errors.EverywearError as e:
        print(f'everywear-tryon: error: {e}', file=sys.stderr)
        return 1
    print(f'wrote {_OUTPUT.value}')
    return 0


def run():
    """The console script's entry point."""
    command.run(main, __name__)


if __name__ == '__main__':
    run()
