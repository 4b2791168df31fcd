"""What users did with the results: impressions, clicks and dwell times, and the logs that keep them.

`base` holds the models and the `EventLog` protocol; `sqlite_log` is the embedded log beside the
store, `dynamodb_log` the cloud's (imported only where boto3 is).
"""
