r"""everywear-representation: both originals' person representations of a frame, as PNGs.

For looking at what the networks are given: runs the representation stage on one person and
garment (the bundled demo frame by default) and writes every channel group as a viewable image.
The try-on itself is everywear-tryon.

  everywear-representation --output_dir=representation
  everywear-representation --person=me.png --parse=me_parse.png --pose=me_keypoints.json \
      --cloth=shirt.png --cloth_mask=shirt_mask.png --output_dir=out

Inputs must already be 256x192 frames; --cloth_mask may be omitted (computed from the white
background).
"""

import sys

from everywear_tf.cli import app as command

command.quiet_tensorflow()

from absl import app  # noqa: E402
from absl import flags  # noqa: E402

from everywear_tf import demo  # noqa: E402
from everywear_tf import errors  # noqa: E402
from everywear_tf.data import visualize  # noqa: E402

_OUTPUT_DIR = flags.DEFINE_string('output_dir', 'representation', 'Where the PNGs go.')
_PERSON = flags.DEFINE_string('person', demo.PERSON, 'Person photo, 256x192.')
_PARSE = flags.DEFINE_string('parse', demo.PERSON_PARSE,
                             'LIP label map: palette/grey PNG or VITON .mat.')
_POSE = flags.DEFINE_string('pose', demo.PERSON_POSE,
                            'Keypoints: OpenPose JSON, VITON .mat or Everywear pose JSON.')
_CLOTH = flags.DEFINE_string('cloth', demo.TSHIRT, 'Garment photo on white, 256x192.')
_CLOTH_MASK = flags.DEFINE_string('cloth_mask', demo.TSHIRT_MASK,
                                  'Garment mask; empty to compute it from the photo.')


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f'unexpected arguments: {argv[1:]}')
    try:
        written = visualize.write_representation_maps(
            output_dir=_OUTPUT_DIR.value, person_path=_PERSON.value, parse_path=_PARSE.value,
            pose_path=_POSE.value, cloth_path=_CLOTH.value,
            cloth_mask_path=_CLOTH_MASK.value or None, log=print)
    except errors.InputError as e:
        print(f'everywear-representation: error: {e}', file=sys.stderr)
        return 1
    print(f'wrote {len(written)} images to {_OUTPUT_DIR.value}')
    return 0


def run():
    """The console script's entry point."""
    command.run(main, __name__)


if __name__ == '__main__':
    run()
