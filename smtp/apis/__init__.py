"""The documented SMTP APIs: the configuration (``config``) and its verification
(``verification``). Each answers through its output serializers."""

from smtp.apis.config import SmtpConfigApi
from smtp.apis.texts import EmailTextsApi
from smtp.apis.verification import VerificationApi, VerificationStatusApi

__all__ = ["EmailTextsApi", "SmtpConfigApi", "VerificationApi", "VerificationStatusApi"]
