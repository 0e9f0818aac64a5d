"""The eleven crm:scheduling 1.1 interactions, by name: what producer.http.app dispatches to."""

from producer.interactions.availability import get_available_dates, get_available_timeslots
from producer.interactions.cancel_booking import cancel_booking
from producer.interactions.catalogue import (
    get_all_care_types,
    get_all_healthcare_facilities,
    get_all_performers,
    get_all_time_types,
)
from producer.interactions.make_booking import make_booking
from producer.interactions.schedule import get_booking_details, get_subject_of_care_schedule
from producer.interactions.update_booking import update_booking

HANDLERS = {
    "GetAvailableDates": get_available_dates,
    "GetAvailableTimeslots": get_available_timeslots,
    "MakeBooking": make_booking,
    "UpdateBooking": update_booking,
    "CancelBooking": cancel_booking,
    "GetBookingDetails": get_booking_details,
    "GetSubjectOfCareSchedule": get_subject_of_care_schedule,
    "GetAllHealthcareFacilities": get_all_healthcare_facilities,
    "GetAllPerformers": get_all_performers,
    "GetAllTimeTypes": get_all_time_types,
    "GetAllCareTypes": get_all_care_types,
}
