from .workflows.order_processing import OrderWorkflow

__all__ = ["OrderWorkflow"]
