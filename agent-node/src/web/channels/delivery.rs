//! The one sender of every channel: what the agent and staff write, sent in order per
//! channel conversation, progress kept after each message (see the `channels` module documentation).

use super::{blocking, ChannelError, Channels, SendError, MAX_BACKOFF, SMS, TELEGRAM, WHATSAPP};
use crate::domain::content::Author;
use crate::platform::backoff::Backoff;
use rusqlite::params;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Delivery loop period when nothing wakes it.
const DELIVERY_PERIOD: Duration = Duration::from_secs(2);

impl Channels {
    /// Sends every undelivered agent/staff message of the channel conversations, in order.
    /// Channels in `paused` are skipped. Returns the channels that hit a transient error.
    pub async fn deliver_pending(
        self: &Arc<Self>,
        paused: &[&'static str],
    ) -> Result<Vec<&'static str>, ChannelError> {
        if self.runtime.suspended()? {
            // A suspended workspace says nothing; the backlog goes out after resume.
            return Ok(Vec::new());
        }
        let this = self.clone();
        let pending: Vec<Backlog> = blocking(move || {
            this.store.with(|c| {
                let mut stmt = c.prepare(
                    "SELECT d.conversation_id, d.channel, d.delivered_id, d.last_inbound_at,
                            d.sending_id, d.local_address
                     FROM channel_conversations d
                     WHERE EXISTS (SELECT 1 FROM messages m
                                   WHERE m.conversation_id = d.conversation_id
                                     AND m.id > d.delivered_id
                                     AND m.author IN ('agent', 'human'))",
                )?;
                let rows = stmt.query_map([], |r| {
                    Ok(Backlog {
                        conversation_id: r.get(0)?,
                        channel: r.get(1)?,
                        delivered: r.get(2)?,
                        last_inbound: r.get(3)?,
                        in_doubt: r.get(4)?,
                        local_address: r.get(5)?,
                    })
                })?;
                Ok(rows.collect::<Result<Vec<_>, _>>()?)
            })
        })
        .await??;
        let mut failed: Vec<&'static str> = Vec::new();
        for backlog in pending {
            let channel: &'static str = match backlog.channel.as_str() {
                TELEGRAM => TELEGRAM,
                WHATSAPP => WHATSAPP,
                SMS => SMS,
                _ => continue,
            };
            if paused.contains(&channel) || failed.contains(&channel) {
                continue;
            }
            if let Err(code) = self.deliver_conversation(channel, &backlog).await? {
                failed.push(channel);
                tracing::warn!(channel, code, "delivery will be retried");
            }
        }
        Ok(failed)
    }

    /// Delivers one conversation's backlog; `Err(code)` on a transient failure.
    ///
    /// Each message is marked as being sent (`sending_id`) before it goes to the provider
    /// and as delivered once the provider took it. A message still marked as being sent
    /// when the loop comes back to it was interrupted by a crash after it may have
    /// reached the customer: neither Bot API nor Graph API can say whether it did, and
    /// neither deduplicates a resend, so it is not sent again; a system message in the
    /// conversation tells staff it may not have arrived.
    async fn deliver_conversation(
        self: &Arc<Self>,
        channel: &'static str,
        backlog: &Backlog,
    ) -> Result<Result<(), &'static str>, ChannelError> {
        let conv_id = backlog.conversation_id.as_str();
        let (delivered, last_inbound) = (backlog.delivered, backlog.last_inbound);
        let (this, id) = (self.clone(), conv_id.to_owned());
        let loaded = blocking(move || -> Result<_, ChannelError> {
            let content = this.runtime.content();
            let Some(conv) = content.conversation(&id)? else {
                return Ok(None);
            };
            let Some(contact) = content.contact(&conv.contact_id)? else {
                return Ok(None);
            };
            let msgs = content.messages_after(&id, delivered, 50)?;
            Ok(Some((contact.identity, conv.contact_id, msgs)))
        })
        .await??;
        let Some((recipient, contact_id, msgs)) = loaded else {
            return Ok(Ok(()));
        };
        for m in msgs {
            if matches!(m.author, Author::Agent | Author::Human) && backlog.in_doubt == Some(m.id) {
                tracing::warn!(
                    channel,
                    message = m.id,
                    "sending was interrupted; not resent"
                );
                let (this, id) = (self.clone(), conv_id.to_owned());
                blocking(move || {
                    this.runtime
                        .content()
                        .append_message(&id, Author::System, INTERRUPTED_NOTE)
                })
                .await??;
            } else if matches!(m.author, Author::Agent | Author::Human) {
                self.mark_sending(conv_id, Some(m.id)).await?;
                let result = match channel {
                    TELEGRAM => self.telegram_send(&recipient, &m.body).await,
                    SMS => {
                        self.sms_send(
                            &contact_id,
                            &recipient,
                            backlog.local_address.as_deref(),
                            &m.body,
                        )
                        .await
                    }
                    _ => {
                        self.whatsapp_deliver(&recipient, m.id, &m.body, last_inbound)
                            .await
                    }
                };
                match result {
                    Ok(()) => self.health.record_ok(channel),
                    Err(SendError::Retry(code)) => {
                        self.health.record_error(channel, code);
                        self.mark_sending(conv_id, None).await?;
                        return Ok(Err(code));
                    }
                    Err(SendError::Permanent(code)) => {
                        self.health.record_error(channel, code);
                        tracing::warn!(channel, code, message = m.id, "message not sent");
                        let (this, id, note) =
                            (self.clone(), conv_id.to_owned(), not_sent_note(code));
                        blocking(move || {
                            this.runtime
                                .content()
                                .append_message(&id, Author::System, &note)
                        })
                        .await??;
                    }
                }
            }
            let (this, id) = (self.clone(), conv_id.to_owned());
            blocking(move || {
                this.store.with(|c| {
                    c.execute(
                        "UPDATE channel_conversations
                         SET delivered_id = MAX(delivered_id, ?2), sending_id = NULL
                         WHERE conversation_id = ?1",
                        params![id, m.id],
                    )?;
                    Ok(())
                })
            })
            .await??;
        }
        Ok(Ok(()))
    }

    /// Marks message `id` of the conversation as being sent (`None`: no longer).
    async fn mark_sending(
        self: &Arc<Self>,
        conv_id: &str,
        id: Option<i64>,
    ) -> Result<(), ChannelError> {
        let (this, conv_id) = (self.clone(), conv_id.to_owned());
        blocking(move || {
            this.store.with(|c| {
                c.execute(
                    "UPDATE channel_conversations SET sending_id = ?2 WHERE conversation_id = ?1",
                    params![conv_id, id],
                )?;
                Ok(())
            })
        })
        .await??;
        Ok(())
    }
}

/// One channel conversation with messages to send.
struct Backlog {
    conversation_id: String,
    channel: String,
    /// The last message handled.
    delivered: i64,
    last_inbound: i64,
    /// A message whose sending was interrupted (see [`Channels::deliver_conversation`]).
    in_doubt: Option<i64>,
    /// Our address the customer wrote to (SMS: the Twilio number replies come from).
    local_address: Option<String>,
}

/// The system message recorded for a message whose sending a crash interrupted.
pub const INTERRUPTED_NOTE: &str = "This message may not have reached the customer: the node \
     stopped while sending it, and it was not sent again so that it does not arrive twice. \
     Send it again if needed.";

/// The system message recorded when a message cannot be delivered.
fn not_sent_note(code: &str) -> String {
    match code {
        "outside_24h_window" => "Not sent: WhatsApp only allows template messages more than 24 hours after the customer's last message".to_owned(),
        "blocked_by_user" => "Not sent: the customer has blocked the bot on Telegram".to_owned(),
        "opted_out" => "Not sent: the customer opted out of text messages (they replied STOP); they receive messages again once they reply START".to_owned(),
        other => format!("Not sent: the channel refused the message ({other})"),
    }
}

/// Sends what the agent and staff write, until aborted: wakes on every stored answer and
/// every 2 s (inbox replies, follow-ups), backing off per channel on transient errors.
pub async fn delivery_loop(channels: Arc<Channels>) {
    let mut backoff: HashMap<&'static str, (Backoff, Instant)> = HashMap::new();
    loop {
        let now = Instant::now();
        let paused: Vec<&'static str> = backoff
            .iter()
            .filter(|(_, (_, until))| *until > now)
            .map(|(c, _)| *c)
            .collect();
        match channels.deliver_pending(&paused).await {
            Ok(failed) => {
                for ch in [TELEGRAM, WHATSAPP, SMS] {
                    if failed.contains(&ch) {
                        let entry = backoff.entry(ch).or_insert_with(|| {
                            (Backoff::new(Duration::from_secs(1), MAX_BACKOFF), now)
                        });
                        entry.1 = Instant::now() + entry.0.next_delay();
                    } else if !paused.contains(&ch) {
                        backoff.remove(ch);
                    }
                }
            }
            Err(e) => tracing::error!(error = %e, "channel delivery failed"),
        }
        tokio::select! {
            () = channels.wake.notified() => {}
            () = tokio::time::sleep(DELIVERY_PERIOD) => {}
        }
    }
}
