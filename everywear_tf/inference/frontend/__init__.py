"""The photo front end: COCO-18 keypoints and an approximate LIP parse from the photo alone.

``pose.py`` (BlazePose: person detector, landmarks, person mask), ``face.py`` (face detector and
landmarks), ``parse.py`` (the parse rules), ``estimator.py`` (all three as one graph, exported as
the ``frontend`` SavedModel, and the ways to run it: in process, from the SavedModel, through TF
Serving). The networks are mediapipe's, converted to core TensorFlow ops by
``everywear_tf.convert.tflite``.
"""
