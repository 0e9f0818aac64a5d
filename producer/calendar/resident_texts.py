"""What MakeBooking, UpdateBooking and CancelBooking tell the resident (resultText), in plain Swedish:
the resident text of every refusal (producer.calendar.refusals).

1177 shows these texts as they are, so they say what happened and what to do, never why in
technical terms.
"""

SLOT_TAKEN = "Tiden är tyvärr inte längre ledig. Välj en annan tid."
SLOT_NOT_FOUND = "Den valda tiden finns inte att boka. Välj en annan tid."
SLOT_PASSED = "Den valda tiden har redan passerat. Välj en annan tid."
INVALID_TIME = "Tiden i bokningen är inte giltig. Välj en tid i listan."
MISSING_RESIDENT = "Personnummer saknas i bokningen. Försök igen från början."
INVALID_RESIDENT = "Personnumret är inte giltigt. Kontrollera uppgifterna och försök igen."
FACILITY_MISMATCH = "Mottagningen i bokningen stämmer inte. Försök igen från början."
WRONG_UNIT = "Tiden kan inte bokas på den valda mottagningen. Välj en annan mottagning."
BOOKING_NOT_FOUND = "Bokningen hittades inte. Den kan redan vara avbokad eller ombokad."
MISSING_BOOKING_ID = "Bokningen som ska ombokas är inte angiven. Försök igen från början."
INVITATION_NOT_FOUND = "Kallelsen hittades inte. Kontakta mottagningen."
INVITATION_ALREADY_BOOKED = "Kallelsen är redan bokad. Du hittar tiden bland dina bokade tider."
INVITATION_EXPIRED = "Kallelsen gäller inte längre. Kontakta mottagningen."
OPEN_INVITATION_REBOOK = "Kallelsen har ingen bokad tid att omboka. Boka en tid utifrån kallelsen i stället."
TOO_LATE_TO_REBOOK = "Tiden kan inte längre ombokas här så nära inpå besöket. Kontakta mottagningen."
TOO_LATE_TO_CANCEL = "Tiden kan inte längre avbokas här så nära inpå besöket. Kontakta mottagningen."
ALREADY_PASSED = "Tiden har redan passerat och kan inte ändras."
ALREADY_CANCELLED = "Tiden var redan avbokad."
BOOKING_CANCELLED = "Bokningen är avbokad och kan inte ombokas. Boka en ny tid i stället."
