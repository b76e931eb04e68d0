"""A fixed set of general reasoning prompts, asked of every run beside the held-out split.

They are not from the training distribution, so they show whether the fine-tune's reasoning
carries over. Each has a ground truth so that it counts toward accuracy too.
"""

GENERAL_PROMPTS: list[dict[str, str]] = [
    {"prompt": "What is 17 * 23? Think step by step.", "ground_truth": "391"},
    {"prompt": "A train travels 60 km in 1.5 hours. What is its average speed in km per hour?", "ground_truth": "40"},
    {"prompt": "Sarah has 3 times as many marbles as Tom. Together they have 48 marbles. How many marbles does Sarah have?", "ground_truth": "36"},
    {"prompt": "A shirt costs $40 and is on sale for 25% off. What is the sale price in dollars?", "ground_truth": "30"},
]
