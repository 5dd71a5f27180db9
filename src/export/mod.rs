//! Documents sunset produces for other tools: CycloneDX bills of materials of a model's
//! dependents or a consumer's dependencies, and the iCalendar feed of retirements. Pure:
//! it formats answers, it reads nothing.

pub mod cyclonedx;
pub mod icalendar;
