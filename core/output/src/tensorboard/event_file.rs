//! TensorBoard's event file format: a sequence of TFRecords (a little-endian u64 length, its
//! masked CRC-32C, the bytes, their masked CRC-32C), each an `Event` protocol buffer. The first
//! event names the format version (`brain.Event:2`); each later one holds one `Summary` of
//! scalar or text values at a step.
//!
//! The messages are declared here with `prost`'s derive, field for field as TensorFlow's
//! `event.proto`, `summary.proto` and `tensor.proto` number them, and only with the fields this
//! writer sets. The TensorBoard crates do not serve: `tensorboard-rs` pins protobuf 2 and
//! image 0.23, `syntaxdot-summary` writes scalars only (no text), `tfrecord` brings a large
//! dependency tree; what they would do is a few dozen lines here.

use prost::Message;

/// An event: a wall time, a step and what happened (tensorflow/core/util/event.proto).
#[derive(Clone, PartialEq, Message)]
struct Event {
    #[prost(double, tag = "1")]
    wall_time: f64,
    #[prost(int64, tag = "2")]
    step: i64,
    #[prost(oneof = "EventKind", tags = "3, 5")]
    kind: Option<EventKind>,
}

#[derive(Clone, PartialEq, prost::Oneof)]
enum EventKind {
    #[prost(string, tag = "3")]
    FileVersion(String),
    #[prost(message, tag = "5")]
    Summary(Summary),
}

/// Values summarised at one step (tensorflow/core/framework/summary.proto).
#[derive(Clone, PartialEq, Message)]
struct Summary {
    #[prost(message, repeated, tag = "1")]
    value: Vec<SummaryValue>,
}

#[derive(Clone, PartialEq, Message)]
struct SummaryValue {
    #[prost(string, tag = "1")]
    tag: String,
    #[prost(message, optional, tag = "9")]
    metadata: Option<SummaryMetadata>,
    #[prost(oneof = "ValueKind", tags = "2, 8")]
    value: Option<ValueKind>,
}

#[derive(Clone, PartialEq, prost::Oneof)]
enum ValueKind {
    /// A scalar; TensorBoard shows it on its scalars dashboard.
    #[prost(float, tag = "2")]
    SimpleValue(f32),
    #[prost(message, tag = "8")]
    Tensor(TensorProto),
}

#[derive(Clone, PartialEq, Message)]
struct SummaryMetadata {
    #[prost(message, optional, tag = "1")]
    plugin_data: Option<PluginData>,
}

#[derive(Clone, PartialEq, Message)]
struct PluginData {
    #[prost(string, tag = "1")]
    plugin_name: String,
    #[prost(bytes = "vec", tag = "2")]
    content: Vec<u8>,
}

/// A tensor; here only a scalar string (tensorflow/core/framework/tensor.proto).
#[derive(Clone, PartialEq, Message)]
struct TensorProto {
    #[prost(int32, tag = "1")]
    dtype: i32,
    #[prost(message, optional, tag = "2")]
    tensor_shape: Option<TensorShape>,
    #[prost(bytes = "vec", repeated, tag = "8")]
    string_val: Vec<Vec<u8>>,
}

/// A shape without dimensions: a scalar.
#[derive(Clone, PartialEq, Message)]
struct TensorShape {}

/// `DT_STRING` of tensorflow/core/framework/types.proto.
const DT_STRING: i32 = 7;

/// The version every event file starts with.
pub const FILE_VERSION: &str = "brain.Event:2";

/// CRC-32C (Castagnoli), the checksum of TFRecords.
const CRC32C: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISCSI);

/// A record's checksum: the CRC-32C rotated right by 15 bits plus a constant, so that a CRC
/// of data that holds CRCs is not trivially related to them.
fn masked_crc(bytes: &[u8]) -> u32 {
    let crc = CRC32C.checksum(bytes);
    crc.rotate_right(15).wrapping_add(0xa282_ead8)
}

/// One value of a summary.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A number on the scalars dashboard.
    Scalar(f32),
    /// Markdown on the text dashboard.
    Text(String),
}

/// An event file being assembled in memory.
#[derive(Debug, Default)]
pub struct EventFile {
    bytes: Vec<u8>,
}

impl EventFile {
    /// A file holding the version event, written at `wall_time` (seconds since 1970).
    pub fn new(wall_time: f64) -> Self {
        let mut file = Self::default();
        file.push(Event {
            wall_time,
            step: 0,
            kind: Some(EventKind::FileVersion(FILE_VERSION.into())),
        });
        file
    }

    /// Appends the values `(tag, value)` summarised at `step`.
    pub fn summary(&mut self, wall_time: f64, step: u64, values: Vec<(String, Value)>) {
        let value = values.into_iter().map(|(tag, v)| summary_value(tag, v)).collect();
        self.push(Event {
            wall_time,
            step: i64::try_from(step).unwrap_or(i64::MAX),
            kind: Some(EventKind::Summary(Summary { value })),
        });
    }

    /// The file's bytes.
    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }

    fn push(&mut self, event: Event) {
        let data = event.encode_to_vec();
        let len = (data.len() as u64).to_le_bytes();
        self.bytes.extend_from_slice(&len);
        self.bytes.extend_from_slice(&masked_crc(&len).to_le_bytes());
        self.bytes.extend_from_slice(&data);
        self.bytes.extend_from_slice(&masked_crc(&data).to_le_bytes());
    }
}

fn summary_value(tag: String, value: Value) -> SummaryValue {
    match value {
        Value::Scalar(x) => {
            SummaryValue { tag, metadata: None, value: Some(ValueKind::SimpleValue(x)) }
        }
        Value::Text(text) => SummaryValue {
            tag,
            // The text plugin's own data is an empty message (version 0).
            metadata: Some(SummaryMetadata {
                plugin_data: Some(PluginData { plugin_name: "text".into(), content: Vec::new() }),
            }),
            value: Some(ValueKind::Tensor(TensorProto {
                dtype: DT_STRING,
                tensor_shape: Some(TensorShape {}),
                string_val: vec![text.into_bytes()],
            })),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_crc_is_castagnolis_masked() {
        // CRC-32C's check value (of "123456789") is 0xE3069283.
        assert_eq!(CRC32C.checksum(b"123456789"), 0xe306_9283);
        // Rotated right by 15 bits (0x2507c60d), plus 0xa282ead8, modulo 2^32.
        assert_eq!(masked_crc(b"123456789"), 0xc78a_b0e5);
    }

    #[test]
    fn records_frame_their_events() {
        let bytes = EventFile::new(1.5).into_bytes();
        let len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
        assert_eq!(bytes.len(), 8 + 4 + len + 4);
        let event = Event::decode(&bytes[12..12 + len]).unwrap();
        assert_eq!(event.wall_time, 1.5);
        assert_eq!(event.kind, Some(EventKind::FileVersion(FILE_VERSION.into())));
        let crc = u32::from_le_bytes(bytes[12 + len..].try_into().unwrap());
        assert_eq!(crc, masked_crc(&bytes[12..12 + len]));
    }
}
