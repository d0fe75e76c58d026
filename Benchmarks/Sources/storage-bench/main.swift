// written by the main engineer
print("storage-bench")
