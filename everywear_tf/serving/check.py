"""One realistic request per model against a TF Serving gRPC endpoint: is each model up, does
its signature answer, how long does it take."""

import time

import grpc
import tensorflow as tf
from tensorflow_serving.apis import prediction_service_pb2_grpc

from everywear_tf import spec
from everywear_tf.export import warmup

MAX_MESSAGE_BYTES = 64 * 1024 * 1024  # image responses exceed gRPC's 4 MiB default


def channel(address, max_message_bytes=MAX_MESSAGE_BYTES):
    """An insecure gRPC channel to ``address`` (host:port) with send and receive limits raised
    to ``max_message_bytes``."""
    return grpc.insecure_channel(address, options=[
            ('grpc.max_receive_message_length', max_message_bytes),
            ('grpc.max_send_message_length', max_message_bytes)])


def check_model(stub, model_name, timeout=30.0, label=None):
    """{'model', 'ok', 'seconds', 'outputs' {key: (dtype, shape)} | 'error'} for one model."""
    module, _ = spec.module_of(model_name)
    request = warmup.predict_request(model_name, warmup.realistic_inputs(module), label=label)
    started = time.monotonic()
    try:
        response = stub.Predict(request, timeout=timeout)
    except grpc.RpcError as e:
        return {'model': model_name, 'ok': False, 'seconds': time.monotonic() - started,
                'error': f'{e.code().name}: {e.details()}'}
    outputs = {key: (tf.dtypes.as_dtype(value.dtype).name,
                     tuple(d.size for d in value.tensor_shape.dim))
               for key, value in response.outputs.items()}
    missing = sorted(set(spec.MODULE_OUTPUTS[module]) - set(outputs))
    result = {'model': model_name, 'ok': not missing, 'seconds': time.monotonic() - started,
              'version': response.model_spec.version.value, 'outputs': outputs}
    if missing:
        result['error'] = f'response lacks outputs {missing}'
    return result


def check(address, model_names=None, timeout=30.0, label=None):
    """Checks every model at ``address`` (host:port); returns the results. Default: every served
    model, ``spec.served_model_names()`` (the nine try-on models, the three one-call models
    and the front end, whose request is the drawn person as a photo)."""
    with channel(address) as open_channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(open_channel)
        return [check_model(stub, name, timeout, label)
                for name in (model_names or spec.served_model_names())]


def report(results):
    """``check``'s results as text, one line per model: 'ok' with version, milliseconds and
    output dtypes and shapes, or 'FAIL' with the error."""
    lines = []
    for r in results:
        if r['ok']:
            shapes = ', '.join(f'{k} {d}{list(s)}' for k, (d, s) in sorted(r['outputs'].items()))
            lines.append(f"ok    {r['model']} v{r['version']} {r['seconds'] * 1000:.0f} ms: "
                         f'{shapes}')
        else:
            lines.append(f"FAIL  {r['model']}: {r['error']}")
    return '\n'.join(lines)


