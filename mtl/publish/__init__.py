"""Publishing: the output folder (guarded, swapped in whole), the model folder, reports, model card, Hub push,
ONNX export and the transfer-versus-scratch comparison.

Example::

    from mtl.publish.model_folder import save_task
    save_task(task, "out/model", overwrite=False)
"""
