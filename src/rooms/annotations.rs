//! Remembering which events have nothing attached: no relation points at them and no
//! redaction redacts them.
//!
//! Serving an event looks up its redaction and its related events (edits, threads, references)
//! for every reader. Under fan-out, a new message goes to thousands of readers and almost
//! never has either, so the answer "plain" is cached per event, tagged with the *annotation
//! epoch*: a counter bumped after every committed event that could change it (an indexed
//! redaction or relation, whichever room it targets). An entry whose tag is not the
//! current epoch is looked up again (by the first reader; the others then hit). The bump comes
//! after the write, so a reader that found nothing either ran after the write (and saw it) or
//! tagged its entry with an epoch the bump then leaves behind. The epoch lives in memory and
//! the cache starts empty, so a restart only costs lookups; with several nodes, the bumps will
//! travel with the notifier's wake-ups.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use ruma::OwnedEventId;

use crate::events::Pdu;
use crate::util::GenerationalCache;

pub struct AnnotationEpochs {
    epoch: AtomicU64,
    /// Plain events: the epoch they were found plain at and their client form, serialised
    /// once for all readers (without the closing brace: see [`Pdu::client_event_open`]).
    plain: GenerationalCache<OwnedEventId, (u64, Arc<str>)>,
}

impl AnnotationEpochs {
    pub fn new(capacity: usize) -> Self {
        Self {
            epoch: AtomicU64::new(0),
            plain: GenerationalCache::new(capacity),
        }
    }

    /// Called after an annotating event committed.
    pub fn bump(&self) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
    }

    /// The current epoch: read it before looking anything up.
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::SeqCst)
    }

    /// The client form of `pdu` if it was found plain at `epoch` (the current one).
    pub fn plain_form(&self, pdu: &Pdu, epoch: u64) -> Option<Arc<str>> {
        self.plain
            .get(&pdu.event_id)
            .and_then(|(tagged, form)| (tagged == epoch).then_some(form))
    }

    /// `pdu` has nothing attached as of `epoch` (read before the lookups that found nothing).
    pub fn remember_plain(&self, pdu: &Pdu, epoch: u64) {
        let form = match self.plain.get(&pdu.event_id) {
            Some((_, form)) => form,
            None => Arc::from(pdu.client_event_open()),
        };
        self.plain.insert(pdu.event_id.clone(), (epoch, form));
    }
}
