"""Alarms on what needs a person: a message in the dead-letter queue (an object that could not
be indexed after every retry) and any error of any function. With `lookalike:alarmEmail` set,
they notify an SNS topic with that address subscribed (AWS mails a confirmation link first)."""

from collections.abc import Mapping
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from .functions import LambdaFunction


@dataclass(frozen=True)
class Alarms:
    dead_letters: aws.cloudwatch.MetricAlarm
    function_errors: dict[str, aws.cloudwatch.MetricAlarm]  # by function
    topic: aws.sns.Topic | None


def alarms(
    name: str, dead_letter_queue: aws.sqs.Queue, functions: Mapping[str, LambdaFunction], email: str | None
) -> Alarms:
    topic = aws.sns.Topic(f"{name}-alarms") if email else None
    if topic is not None:
        aws.sns.TopicSubscription(f"{name}-alarms-email", topic=topic.arn, protocol="email", endpoint=email)
    actions = [topic.arn] if topic is not None else []
    dead_letters = _above_zero(
        f"{name}-dead-letters",
        "Gallery changes that failed indexing after every retry are waiting in the DLQ",
        ("AWS/SQS", "ApproximateNumberOfMessagesVisible", "Maximum", 60),
        {"QueueName": dead_letter_queue.name},
        actions,
    )
    function_errors = {
        function: _above_zero(
            f"{name}-{function}-errors",
            f"The {function} function raised errors",
            ("AWS/Lambda", "Errors", "Sum", 300),
            {"FunctionName": target.function.name},
            actions,
        )
        for function, target in functions.items()
    }
    return Alarms(dead_letters, function_errors, topic)


def _above_zero(
    name: str,
    description: str,
    metric: tuple[str, str, str, int],
    dimensions: Mapping[str, pulumi.Input[str]],
    actions: list[pulumi.Output[str]],
) -> aws.cloudwatch.MetricAlarm:
    """Alarm as soon as the metric (namespace, name, statistic, period in s) is above zero once;
    no data (an idle function, an empty queue) is fine."""
    namespace, metric_name, statistic, period = metric
    return aws.cloudwatch.MetricAlarm(
        name,
        alarm_description=description,
        namespace=namespace,
        metric_name=metric_name,
        dimensions=dict(dimensions),
        statistic=statistic,
        period=period,
        evaluation_periods=1,
        threshold=0,
        comparison_operator="GreaterThanThreshold",
        treat_missing_data="notBreaching",
        alarm_actions=actions,
    )
