"""everywear-tf: a TensorFlow 2 port of the Everywear virtual try-on pipeline."""

import setuptools

# The stack is pinned together (DESIGN.md §2): tensorflow-addons 0.23.0 supports TF 2.13-2.15 only,
# and each tensorflow-serving-api release requires the tensorflow release of the same number.
INSTALL_REQUIRES = [
    'tensorflow==2.15.1',
    'tensorflow-addons==0.23.0',
    'tensorflow-serving-api==2.15.1',
    'numpy<2',
    'scipy',
    'opencv-python-headless',
    'absl-py',
    # Palette PNGs (LIP label maps) keep their label ids only through Pillow: OpenCV and
    # tf.io.decode_png expand the palette to colours.
    'pillow',
]

EXTRAS_REQUIRE = {
    'test': [
        'pytest',
        'pytest-timeout',
        'pyyaml',  # checks serving/docker-compose.yml and k8s/ against the configs
    ],
    # Only for reading the original CP-VTON .pth checkpoints; a CPU build of this release lies on
    # the project's machines.
    'torch': ['torch==2.13.0'],
}

setuptools.setup(
    name='everywear-tf',
    version='0.1.0',
    description='TensorFlow 2 port of the Everywear virtual try-on pipeline (GMM, EDM, RM).',
    python_requires='>=3.11,<3.12',
    packages=setuptools.find_packages(include=['everywear_tf', 'everywear_tf.*']) + [
            'everywear_tf.demo_weights'],
    # The demo weights live in checkpoints/demo/ and install as everywear_tf.demo_weights.
    package_dir={'everywear_tf.demo_weights': 'checkpoints/demo'},
    package_data={'everywear_tf': ['demo/*.png', 'demo/*.jpg', 'demo/*.json'],
                  'everywear_tf.demo_weights': ['*/manifest.json', '*/weights.*']},
    install_requires=INSTALL_REQUIRES,
    extras_require=EXTRAS_REQUIRE,
    entry_points={
        'console_scripts': [
            'everywear-representation = everywear_tf.cli.representation:run',
            'everywear-tryon = everywear_tf.cli.tryon:run',
            'everywear-batch = everywear_tf.cli.batch:run',
        ],
    },
)
