"""TF Serving's configuration files, built, read and written through protos.

``models.config`` is a ``ModelServerConfig`` (tensorflow_serving.config). ``batching.config`` and
``monitoring.config`` are ``BatchingParameters`` and ``MonitoringConfig``, whose Python modules the
tensorflow-serving-api wheel does not ship; their messages are declared here with the upstream
field names and numbers (session_bundle_config.proto, monitoring_config.proto), so the text format
is the server's own.
"""

import os

from google.protobuf import descriptor_pb2
from google.protobuf import descriptor_pool
from google.protobuf import message_factory
from google.protobuf import text_format
from google.protobuf import wrappers_pb2
from tensorflow_serving.config import model_server_config_pb2

from everywear_tf import errors
from everywear_tf import fileio
from everywear_tf import spec

MODELS_CONFIG = 'models.config'
BATCHING_CONFIG = 'batching.config'
MONITORING_CONFIG = 'monitoring.config'
PROMETHEUS_PATH = '/monitoring/prometheus/metrics'
# Where the committed models.config says the exported tree is: the container path that
# docker-compose and k8s mount it at (the dev server maps it with --model_base_path_prefix).
CONTAINER_BASE_PATH = '/models'

_HEADER = ('# Written through the TF Serving protos by everywear_tf.serving.config '
           '(serving/write_configs.py, serving/rollout.py).\n')


class ConfigError(errors.InputError):
    """A serving config file that does not parse or breaks TF Serving's rules."""


def _declare_messages():
    pool = descriptor_pool.DescriptorPool()
    pool.AddSerializedFile(wrappers_pb2.DESCRIPTOR.serialized_pb)
    proto = descriptor_pb2.FileDescriptorProto(
            name='everywear/tensorflow_serving_configs.proto', package='tensorflow.serving',
            syntax='proto3', dependency=['google/protobuf/wrappers.proto'])
    field = descriptor_pb2.FieldDescriptorProto
    optional, repeated = field.LABEL_OPTIONAL, field.LABEL_REPEATED

    def add(message, name, number, kind, type_name=None, label=optional):
        message.field.add(name=name, number=number, type=kind, type_name=type_name, label=label)

    batching = proto.message_type.add(name='BatchingParameters')
    for name, number in (('max_batch_size', 1), ('batch_timeout_micros', 2),
                         ('max_enqueued_batches', 3), ('num_batch_threads', 4),
                         ('max_execution_batch_size', 9)):
        add(batching, name, number, field.TYPE_MESSAGE, '.google.protobuf.Int64Value')
    add(batching, 'thread_pool_name', 5, field.TYPE_MESSAGE, '.google.protobuf.StringValue')
    add(batching, 'allowed_batch_sizes', 6, field.TYPE_INT64, label=repeated)
    add(batching, 'pad_variable_length_inputs', 7, field.TYPE_BOOL)
    add(batching, 'enable_large_batch_splitting', 8, field.TYPE_MESSAGE,
        '.google.protobuf.BoolValue')
    prometheus = proto.message_type.add(name='PrometheusConfig')
    add(prometheus, 'enable', 1, field.TYPE_BOOL)
    add(prometheus, 'path', 2, field.TYPE_STRING)
    monitoring = proto.message_type.add(name='MonitoringConfig')
    add(monitoring, 'prometheus_config', 1, field.TYPE_MESSAGE,
        '.tensorflow.serving.PrometheusConfig')
    pool.Add(proto)
    return tuple(message_factory.GetMessageClass(
            pool.FindMessageTypeByName(f'tensorflow.serving.{name}'))
                 for name in ('BatchingParameters', 'MonitoringConfig'))


BatchingParameters, MonitoringConfig = _declare_messages()


def model_config(name, base_path, versions=None, labels=None):
    """One model's entry.

    versions: None (latest 1, TF Serving's default), an int n (latest n), 'all', or a list of
    specific version numbers. labels: {label: version}.
    """
    if not os.path.isabs(base_path) and '://' not in base_path:
        raise ValueError(f'TF Serving needs an absolute base_path, got {base_path!r}')
    config = model_server_config_pb2.ModelConfig(name=name, base_path=base_path,
                                                 model_platform='tensorflow')
    policy = config.model_version_policy
    if versions == 'all':
        policy.all.SetInParent()
    elif isinstance(versions, int):
        policy.latest.num_versions = versions
    elif versions is not None:
        policy.specific.versions.extend(sorted(int(v) for v in versions))
    for label, version in sorted((labels or {}).items()):
        config.version_labels[label] = int(version)
    return config


def serving_config(base_path, model_names=None, versions=None, labels=None):
    """A ModelServerConfig for ``model_names`` under ``base_path/<name>`` (default: every served
    model, ``spec.served_model_names()``: the nine try-on models, the three one-call
    models and the front end)."""
    config = model_server_config_pb2.ModelServerConfig()
    for name in model_names or spec.served_model_names():
        config.model_config_list.config.append(
                model_config(name, f'{base_path.rstrip("/")}/{name}', versions, labels))
    return config


def batching_parameters(max_batch_size=8, batch_timeout_micros=2000, num_batch_threads=2,
                        max_enqueued_batches=100, allowed_batch_sizes=(1, 2, 4, 8)):
    """Server-side batching tuned for a few CPU cores (ARCHITECTURE.md §6)."""
    params = BatchingParameters()
    params.max_batch_size.value = max_batch_size
    params.batch_timeout_micros.value = batch_timeout_micros
    params.num_batch_threads.value = num_batch_threads
    params.max_enqueued_batches.value = max_enqueued_batches
    params.allowed_batch_sizes.extend(allowed_batch_sizes)
    if allowed_batch_sizes and allowed_batch_sizes[-1] != max_batch_size:
        raise ValueError('the last allowed batch size must equal max_batch_size')
    return params


def monitoring_config(path=PROMETHEUS_PATH):
    """A MonitoringConfig that turns TF Serving's Prometheus metrics on, served at ``path``."""
    config = MonitoringConfig()
    config.prometheus_config.enable = True
    config.prometheus_config.path = path
    return config


def to_text(message):
    """A config message in protobuf text format, after the generated-file header comment."""
    return _HEADER + text_format.MessageToString(message)


def write(path, message):
    """Writes a config as text format, atomically (a polling server never sees half a file)."""
    fileio.atomic_write_bytes(path, to_text(message).encode())


def read(path, message_class=model_server_config_pb2.ModelServerConfig):
    """Parses a text-format config; a malformed file is a ConfigError naming it."""
    errors.require_file(path)
    with open(path) as f:
        text = f.read()
    try:
        return text_format.Parse(text, message_class())
    except text_format.ParseError as e:
        raise ConfigError(path, f'not a valid {message_class.DESCRIPTOR.name}: {e}') from None


def read_models(path):
    """The ModelServerConfig in text-format file ``path`` (``read`` for that message)."""
    return read(path, model_server_config_pb2.ModelServerConfig)


def validate(config, source='<memory>'):
    """TF Serving's own checks on a ModelServerConfig: unique names, absolute paths, platform."""
    seen = set()
    for model in config.model_config_list.config:
        if not model.name:
            raise ConfigError(source, 'a model has no name')
        if model.name in seen:
            raise ConfigError(source, f'model {model.name!r} is listed twice')
        seen.add(model.name)
        if not os.path.isabs(model.base_path) and '://' not in model.base_path:
            raise ConfigError(source, f'model {model.name!r}: base_path must be absolute, got '
                                      f'{model.base_path!r}')
        if model.model_platform != 'tensorflow':
            raise ConfigError(source, f'model {model.name!r}: model_platform must be '
                                      f'"tensorflow", got {model.model_platform!r}')
    return config


def initial_models_config(base_path=CONTAINER_BASE_PATH):
    """Every served model (the nine try-on models, the three one-call models and the front
    end) at version 1, labelled both stable and canary (rollouts move them)."""
    return serving_config(base_path, versions=[1], labels={spec.STABLE: 1, spec.CANARY: 1})


def write_all(directory, base_path=CONTAINER_BASE_PATH, **batching):
    """Writes models.config, batching.config and monitoring.config into ``directory``."""
    paths = {}
    for name, message in ((MODELS_CONFIG, initial_models_config(base_path)),
                          (BATCHING_CONFIG, batching_parameters(**batching)),
                          (MONITORING_CONFIG, monitoring_config())):
        paths[name] = os.path.join(directory, name)
        write(paths[name], message)
    return paths
