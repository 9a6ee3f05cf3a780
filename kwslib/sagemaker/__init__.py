"""kws on Amazon SageMaker (SDK v2): `launch` starts and manages jobs and endpoints, `inference` is the serving
handler shipped as code/inference.py, `train_entry` is the training job's entry point.

Nothing here imports the SageMaker SDK until a launch function needs it (`pip install 'kwslib[sagemaker]'`).
"""
