//! Request bodies that stop arriving (issue 18, defect 7): actix times out a request's
//! head (`client_request_timeout`) but waits for its body forever, so a client that sends
//! headers and stalls held a worker's request open. [`body_deadline`] wraps the body in an
//! idle timeout: when no byte arrives for that long, the read fails and the request is
//! answered 408 `request_timeout`, with `Connection: close`.

use crate::error::Code;
use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::error::{InternalError, PayloadError};
use actix_web::http::header;
use actix_web::middleware::Next;
use actix_web::{Error, HttpMessage, HttpResponse};
use futures_util::StreamExt;
use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

/// Middleware body (use with `middleware::from_fn`): fails the body read after `idle`
/// without a byte, and answers 408 when that happened.
pub async fn body_deadline<B: MessageBody + 'static>(
    idle: Duration,
    mut req: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    let timed_out = Rc::new(Cell::new(false));
    let flag = timed_out.clone();
    let inner = req.take_payload();
    let stream = futures_util::stream::unfold(Some(inner), move |state| {
        let flag = flag.clone();
        async move {
            let mut p = state?;
            match tokio::time::timeout(idle, p.next()).await {
                Ok(Some(item)) => Some((item, Some(p))),
                Ok(None) => None,
                Err(_) => {
                    flag.set(true);
                    let e = std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        "request body stopped arriving",
                    );
                    Some((Err(PayloadError::Io(e)), None))
                }
            }
        }
    });
    let boxed: Payload =
        Payload::from(Box::pin(stream) as std::pin::Pin<Box<dyn futures_util::Stream<Item = _>>>);
    req.set_payload(boxed);
    // An inner layer that reads the body itself may turn the failed read into an error.
    let res = next.call(req).await;
    if !timed_out.get() {
        return res.map(ServiceResponse::map_into_boxed_body);
    }
    tracing::warn!(idle_secs = idle.as_secs_f64(), "request body timed out");
    let answer = HttpResponse::RequestTimeout()
        .insert_header((header::CONNECTION, "close"))
        .json(outpost_protocol::ErrorBody {
            code: Code::RequestTimeout.as_str().to_owned(),
            message: "The request body stopped arriving; send it again.".to_owned(),
        });
    match res {
        Ok(res) => Ok(ServiceResponse::new(res.into_parts().0, answer)),
        Err(e) => Err(InternalError::from_response(e, answer).into()),
    }
}
